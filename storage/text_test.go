package storage_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// Text StorableText accepts, control characters and all: the login pages
// refuse those by a rule of their own, the store does not.
var storableSamples = []string{
	"loan0100", "ｌｏａｎ０１００", "テスト 太郎", "tab\tand\nnewline", "\x01\x7f", "\u2028", "😀", "\uFFFD",
}

// Text PostgreSQL cannot hold: NUL, and byte strings that are not UTF-8
// (a stray byte, a cut sequence, an encoded surrogate, an overlong NUL).
var unstorableSamples = []string{"a\x00b", "\x00", "\xff", "caf\xc3", "\xed\xa0\x80", "\xc0\x80"}

// TestStorableTextIsWhatBothEnginesHold checks the rule against the real
// engines: what it accepts is stored and found again as given on both,
// and what it refuses PostgreSQL refuses with an error (not "not found"),
// the difference callers must not let through.
func TestStorableTextIsWhatBothEnginesHold(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		store := storagetest.New(t, flavor)
		ctx := t.Context()
		now := time.Now().UTC()
		for i, s := range storableSamples {
			if !storage.StorableText(s, 64) {
				t.Errorf("StorableText(%q) = false", s)
				continue
			}
			u := &storage.User{ID: fmt.Sprintf("u-%d", i), LoginID: s, Email: fmt.Sprintf("%d@example.jp", i), DisplayName: s, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
			if err := store.CreateUser(ctx, u); err != nil {
				t.Errorf("CreateUser(login ID %q): %v", s, err)
				continue
			}
			got, err := store.UserByLoginID(ctx, s)
			if err != nil || got.ID != u.ID || got.LoginID != s || got.DisplayName != s {
				t.Errorf("UserByLoginID(%q) = %+v, %v; want it back as stored", s, got, err)
			}
		}
		for _, s := range unstorableSamples {
			if storage.StorableText(s, 64) {
				t.Errorf("StorableText(%q) = true", s)
			}
			_, err := store.UserByLoginID(ctx, s)
			if flavor == "postgres" && (err == nil || errors.Is(err, storage.ErrNotFound)) {
				t.Errorf("PostgreSQL looked up %q: %v; the rule refuses text PostgreSQL holds", s, err)
			}
		}
	})
}

func TestStorableTextCountsBytes(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want bool
	}{
		{"", 0, true}, {"abc", 3, true}, {"abcd", 3, false}, {"あ", 3, true}, {"あ", 2, false}, {strings.Repeat("x", 2048), 2048, true},
	} {
		if got := storage.StorableText(tc.s, tc.max); got != tc.want {
			t.Errorf("StorableText(%.20q, %d) = %v, want %v", tc.s, tc.max, got, tc.want)
		}
	}
}

// RepairText keeps what it can and always ends storable within the bound.
func TestRepairTextEndsStorable(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"Mozilla/5.0", 512, "Mozilla/5.0"},
		{"evil\xff\xfe!", 512, "evil\uFFFD!"},
		{"a\x00b", 512, "a\uFFFDb"},
		{"tab\tkept", 512, "tab\tkept"},
		{"ああ", 4, "あ"},
		{"a\xff", 3, "a"},
		{"abc", 0, ""},
	} {
		if got := storage.RepairText(tc.s, tc.max); got != tc.want {
			t.Errorf("RepairText(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
	}
	for _, s := range append(append([]string{}, unstorableSamples...), storableSamples...) {
		for max := range 12 {
			if got := storage.RepairText(s+s, max); !storage.StorableText(got, max) || !utf8.ValidString(got) {
				t.Errorf("RepairText(%q, %d) = %q, not storable", s+s, max, got)
			}
		}
	}
}

func FuzzRepairTextEndsStorable(f *testing.F) {
	for _, s := range unstorableSamples {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max % 4096
		if max < 0 {
			max = -max
		}
		got := storage.RepairText(s, max)
		if !storage.StorableText(got, max) {
			t.Fatalf("RepairText(%q, %d) = %q, not storable", s, max, got)
		}
		if storage.StorableText(s, max) && got != s {
			t.Fatalf("RepairText changed storable %q to %q", s, got)
		}
	})
}
