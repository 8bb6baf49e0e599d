package passkeytest

import (
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is the headless Chromium the browser tests drive: the
// IDP_TEST_CHROMIUM variable, else the usual Debian paths. Without one the
// test fails.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("IDP_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	// Never a skip: a browser test that did not run proves nothing.
	t.Fatal("Chromium not found: apt-get install chromium, or set IDP_TEST_CHROMIUM")
	return ""
}

// ChromiumOptions are the allocator options of every browser test: the
// given Chromium, headless without sandbox or GPU, no background traffic,
// and a Japanese browser as the customers' is.
func ChromiumOptions(path string) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("lang", "ja"),
		chromedp.Flag("accept-lang", "ja"),
	)
}
