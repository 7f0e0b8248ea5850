package main

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/bcrypt"
)

func props(m map[string]any) resource.PropertyMap {
	return resource.NewPropertyMapFromMap(m)
}

func mustSpec(t *testing.T, m map[string]any) passwordSpec {
	t.Helper()
	spec, known, failures := parseSpec(props(m))
	if len(failures) > 0 || !known {
		t.Fatalf("parseSpec(%v): known=%v failures=%v", m, known, failures)
	}
	return spec
}

func count(s, chars string) int {
	n := 0
	for _, c := range s {
		if strings.ContainsRune(chars, c) {
			n++
		}
	}
	return n
}

func TestDefaultsMatchUpstream(t *testing.T) {
	spec := mustSpec(t, map[string]any{"length": 16})
	want := passwordSpec{Length: 16, Upper: true, Lower: true, Numeric: true, Special: true}
	if spec != want {
		t.Fatalf("spec = %+v, want %+v", spec, want)
	}
	if spec.specials() != "!@#$%&*()-_=+[]{}<>:?" {
		t.Fatalf("default specials = %q", spec.specials())
	}
}

func TestLengthAndCharset(t *testing.T) {
	cases := []struct {
		name    string
		in      map[string]any
		allowed string
	}{
		{"all classes", map[string]any{"length": 40}, upperChars + lowerChars + numericChars + defaultSpecial},
		{"no special", map[string]any{"length": 40, "special": false}, upperChars + lowerChars + numericChars},
		{"lower only", map[string]any{"length": 33, "upper": false, "numeric": false, "special": false}, lowerChars},
		{"override special", map[string]any{"length": 64, "overrideSpecial": "-_"}, upperChars + lowerChars + numericChars + "-_"},
		{"number=false (deprecated)", map[string]any{"length": 50, "number": false}, upperChars + lowerChars + defaultSpecial},
		{"one char", map[string]any{"length": 1}, upperChars + lowerChars + numericChars + defaultSpecial},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := mustSpec(t, tc.in)
			for i := 0; i < 50; i++ {
				got, err := generate(spec)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(got)) != spec.Length {
					t.Fatalf("len = %d, want %d", len(got), spec.Length)
				}
				for _, c := range got {
					if !strings.ContainsRune(tc.allowed, c) {
						t.Fatalf("character %q outside the allowed set %q", c, tc.allowed)
					}
				}
			}
		})
	}
}

func TestMinimumCounts(t *testing.T) {
	spec := mustSpec(t, map[string]any{
		"length": 12, "minUpper": 3, "minLower": 2, "minNumeric": 4, "minSpecial": 3, "overrideSpecial": "%@",
	})
	for i := 0; i < 200; i++ {
		got, err := generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		if count(got, upperChars) < 3 || count(got, lowerChars) < 2 || count(got, numericChars) < 4 || count(got, "%@") < 3 {
			t.Fatalf("minimums not met in a %d-char result: upper=%d lower=%d numeric=%d special=%d", len(got),
				count(got, upperChars), count(got, lowerChars), count(got, numericChars), count(got, "%@"))
		}
	}
}

// Upstream draws the minimum of a class even when the class is disabled; the stand-in does too.
func TestMinimumOfDisabledClassIsStillDrawn(t *testing.T) {
	spec := mustSpec(t, map[string]any{"length": 10, "special": false, "minSpecial": 2})
	for i := 0; i < 50; i++ {
		got, err := generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(got, defaultSpecial); n != 2 {
			t.Fatalf("special characters = %d, want exactly the 2 minimum ones", n)
		}
	}
}

// The minimum characters must not sit at fixed positions: over many draws, the first
// character of a password whose only digits are its 1 minimum must sometimes be a digit.
func TestShuffleMovesMinimums(t *testing.T) {
	spec := mustSpec(t, map[string]any{"length": 4, "numeric": false, "minNumeric": 1, "special": false})
	positions := map[int]bool{}
	for i := 0; i < 400; i++ {
		got, err := generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		positions[strings.IndexAny(got, numericChars)] = true
	}
	if len(positions) != 4 {
		t.Fatalf("the minimum digit landed only at positions %v over 400 draws", positions)
	}
}

func TestResultsDiffer(t *testing.T) {
	spec := mustSpec(t, map[string]any{"length": 32})
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		got, err := generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		if seen[got] {
			t.Fatal("the same 32-character password was drawn twice")
		}
		seen[got] = true
	}
}

func TestBcryptHash(t *testing.T) {
	for _, n := range []int{16, 72, 100} {
		pw, err := generate(mustSpec(t, map[string]any{"length": n}))
		if err != nil {
			t.Fatal(err)
		}
		h, err := bcryptHash(pw)
		if err != nil {
			t.Fatal(err)
		}
		if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != bcrypt.DefaultCost {
			t.Fatalf("cost = %d (%v), want %d", cost, err, bcrypt.DefaultCost)
		}
		prefix := pw
		if len(prefix) > 72 {
			prefix = prefix[:72]
		}
		if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(prefix)); err != nil {
			t.Fatalf("length %d: hash does not verify the (first 72 bytes of the) result: %v", n, err)
		}
	}
}

func TestValidationMessages(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want []checkFailure
	}{
		{"missing length", map[string]any{"special": true}, []checkFailure{{"length",
			`Missing required argument: The argument "length" is required, but no definition was found.`}}},
		{"length 0", map[string]any{"length": 0}, []checkFailure{{"length", "Attribute length value must be at least 1, got: 0"}}},
		{"minimums exceed length", map[string]any{"length": 3, "minUpper": 2, "minSpecial": 2}, []checkFailure{{"length",
			"Attribute length value must be at least sum of min_upper + min_lower + min_numeric + min_special, got: 3"}}},
		{"number and numeric disagree", map[string]any{"length": 8, "number": true, "numeric": false}, []checkFailure{{"numeric",
			"Number and numeric are both configured with different values: Number is deprecated, use numeric instead"}}},
		{"every class off", map[string]any{"length": 8, "upper": false, "lower": false, "numeric": false, "special": false},
			[]checkFailure{{"numeric", "Invalid Attribute Combination: At least one attribute out of [upper,lower,numeric,special] must be specified as true"}}},
		{"negative minimum", map[string]any{"length": 8, "minLower": -1}, []checkFailure{{"minLower",
			"Attribute min_lower value must be at least 0, got: -1"}}},
		{"fractional length", map[string]any{"length": 8.5}, []checkFailure{{"length", "length must be a whole number, got a number"}}},
		{"wrong type", map[string]any{"length": 8, "upper": "yes"}, []checkFailure{{"upper", "upper must be true or false, got a string"}}},
		{"unknown property", map[string]any{"length": 8, "lenght": 9}, []checkFailure{{"lenght",
			`unknown property "lenght": RandomPassword accepts keepers, length, lower, minLower, minNumeric, minSpecial, minUpper, number, numeric, overrideSpecial, special, upper`}}},
		{"two problems at once", map[string]any{"length": 0, "upper": 1}, []checkFailure{
			{"length", "Attribute length value must be at least 1, got: 0"},
			{"upper", "upper must be true or false, got a number"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, known, got := parseSpec(props(tc.in))
			if known {
				t.Error("known = true for invalid inputs")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("failures = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("failure %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestAllClassesOffIsFineWhenOneIsLeftToItsDefault(t *testing.T) {
	// Upstream's rule applies only when all four are configured; an unset one defaults to true.
	spec := mustSpec(t, map[string]any{"length": 8, "upper": false, "lower": false, "special": false})
	if !spec.Numeric {
		t.Fatal("numeric should default to true")
	}
}

func TestUnknownInputsSkipValidation(t *testing.T) {
	m := props(map[string]any{"minUpper": 5})
	m["length"] = resource.MakeComputed(resource.NewStringProperty(""))
	_, known, failures := parseSpec(m)
	if known || len(failures) != 0 {
		t.Fatalf("known=%v failures=%v; want unknown, no failures", known, failures)
	}
}
