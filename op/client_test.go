package op

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestClientSecretMatches(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("the-right-secret-of-32-characters"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{cfg: ClientConfig{ID: "web", SecretHash: string(hash)}}
	for i, tc := range []struct {
		secret string
		want   bool
	}{
		{"wrong", false},
		{"the-right-secret-of-32-characters", true},
		{"the-right-secret-of-32-characters", true},  // remembered
		{"the-right-secret-of-32-characterz", false}, // still checked after one success
		{"", false},
	} {
		if got := c.secretMatches(tc.secret); got != tc.want {
			t.Errorf("case %d (%q): secretMatches = %v, want %v", i, tc.secret, got, tc.want)
		}
	}
	public := &client{cfg: ClientConfig{ID: "spa", Public: true}}
	if public.secretMatches("") || public.secretMatches("anything") {
		t.Error("a public client matched a secret")
	}
}
