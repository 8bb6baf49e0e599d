package templates

import "testing"

func TestHoursInEnglish(t *testing.T) {
	for in, want := range map[string]string{
		"平日 9:00–17:00":          "Weekdays 9:00–17:00",
		"平日 9:00 – 17:00":        "Weekdays 9:00 – 17:00",
		"平日 9:00～17:00（土日祝日を除く）": "Weekdays 9:00–17:00 (Saturdays, Sundays and public holidays excepted)",
		"9:00-17:00":             "9:00-17:00",
	} {
		if got := Hours("en", in); got != want {
			t.Errorf("Hours(en, %q) = %q, want %q", in, got, want)
		}
		if got := Hours("ja", in); got != in {
			t.Errorf("Hours(ja, %q) = %q, want it unchanged", in, got)
		}
	}
}
