package passkeytest

import (
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is the headless Chromium the browser tests drive: the
// IDP_TEST_CHROMIUM variable, else the usual Debian paths. Without one the
// test fails in CI (CI is set by .ci/run), where the browser tests must run,
// and is skipped elsewhere.
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
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium not found: CI must run the browser tests (apt-get install chromium or set IDP_TEST_CHROMIUM)")
	}
	t.Skip("Chromium not found: run .ci/test, or set IDP_TEST_CHROMIUM")
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
