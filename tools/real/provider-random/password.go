package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/bcrypt"
	"pms-secrets/tools/real/pluginkit"
)

// The character classes of terraform-provider-random's string generator.
const (
	upperChars     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowerChars     = "abcdefghijklmnopqrstuvwxyz"
	numericChars   = "0123456789"
	defaultSpecial = "!@#$%&*()-_=+[]{}<>:?"
	// bcrypt reads at most 72 bytes; upstream hashes the first 72 bytes of longer results.
	bcryptMaxBytes = 72
)

// passwordSpec is a RandomPassword's inputs after upstream's defaults (and the number/numeric
// synchronisation) are applied.
type passwordSpec struct {
	Length                                     int64
	Upper, Lower, Numeric, Special             bool
	MinUpper, MinLower, MinNumeric, MinSpecial int64
	OverrideSpecial                            string
}

// specials is the special-character class: overrideSpecial when non-empty, else upstream's.
func (s passwordSpec) specials() string {
	if s.OverrideSpecial != "" {
		return s.OverrideSpecial
	}
	return defaultSpecial
}

// generate draws a password as upstream does: first each class's minimum count from that
// class alone (whether or not the class is enabled, as upstream does), then the rest from the
// union of the enabled classes, then a uniform shuffle. Every draw uses crypto/rand.
func generate(s passwordSpec) (string, error) {
	var pool strings.Builder
	if s.Upper {
		pool.WriteString(upperChars)
	}
	if s.Lower {
		pool.WriteString(lowerChars)
	}
	if s.Numeric {
		pool.WriteString(numericChars)
	}
	if s.Special {
		pool.WriteString(s.specials())
	}

	out := make([]byte, 0, s.Length)
	for _, class := range []struct {
		chars string
		count int64
	}{
		{numericChars, s.MinNumeric},
		{lowerChars, s.MinLower},
		{upperChars, s.MinUpper},
		{s.specials(), s.MinSpecial},
	} {
		drawn, err := draw(class.chars, class.count)
		if err != nil {
			return "", err
		}
		out = append(out, drawn...)
	}
	rest, err := draw(pool.String(), s.Length-int64(len(out)))
	if err != nil {
		return "", err
	}
	out = append(out, rest...)

	// Fisher-Yates with crypto/rand, so where the minimum characters land is not predictable.
	for i := len(out) - 1; i > 0; i-- {
		j, err := randIndex(i + 1)
		if err != nil {
			return "", err
		}
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

func draw(chars string, count int64) ([]byte, error) {
	if count <= 0 {
		return nil, nil
	}
	if chars == "" {
		// Unreachable after validate (at least one class is enabled); upstream would panic here.
		return nil, errors.New("no characters to draw from: enable at least one of upper, lower, numeric, special")
	}
	out := make([]byte, count)
	for i := range out {
		j, err := randIndex(len(chars))
		if err != nil {
			return nil, err
		}
		out[i] = chars[j]
	}
	return out, nil
}

func randIndex(n int) (int, error) {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, fmt.Errorf("reading the system's random source: %w", err)
	}
	return int(v.Int64()), nil
}

// bcryptHash is upstream's bcrypt_hash: bcrypt at the default cost of the first 72 bytes.
func bcryptHash(result string) (string, error) {
	b := []byte(result)
	if len(b) > bcryptMaxBytes {
		b = b[:bcryptMaxBytes]
	}
	h, err := bcrypt.GenerateFromPassword(b, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("generating the bcrypt hash: %w", err)
	}
	return string(h), nil
}

// input is one property as the engine sent it (absent, unknown in a preview, or known, secret
// wrappers removed); get reads one. Both are pluginkit's, shared with the other stand-in.
type input = pluginkit.Input

func get(m resource.PropertyMap, key resource.PropertyKey) input { return pluginkit.Get(m, key) }

// checkFailure is a validation error reported against one property (the engine prints it
// as "<type> resource '<name>': property <key> ... has a problem: <reason>").
type checkFailure struct {
	property string
	reason   string
}

// Upstream's attribute names (Terraform snake_case) appear in its messages; the property key
// the failure is attached to is the Pulumi name.
var tfNames = map[string]string{
	"length": "length", "minUpper": "min_upper", "minLower": "min_lower",
	"minNumeric": "min_numeric", "minSpecial": "min_special",
}

// parseSpec validates the inputs and, when every input is known, returns the resolved spec.
// Failures list every problem, not just the first. known is false when a needed input is
// still unknown (preview), in which case only the known parts were validated.
func parseSpec(news resource.PropertyMap) (spec passwordSpec, known bool, failures []checkFailure) {
	known = true
	fail := func(prop, format string, args ...any) {
		failures = append(failures, checkFailure{property: prop, reason: fmt.Sprintf(format, args...)})
	}
	for key := range news {
		if !passwordInputs[string(key)] && !strings.HasPrefix(string(key), "__") {
			fail(string(key), "unknown property %q: RandomPassword accepts %s", key, strings.Join(passwordInputOrder, ", "))
		}
	}

	intOf := func(key string, def int64) (int64, bool) {
		in := get(news, resource.PropertyKey(key))
		switch {
		case !in.Set:
			return def, true
		case !in.Known:
			known = false
			return 0, false
		case !in.V.IsNumber() || in.V.NumberValue() != float64(int64(in.V.NumberValue())):
			fail(key, "%s must be a whole number, got a %s", key, in.V.TypeString())
			return 0, false
		}
		return int64(in.V.NumberValue()), true
	}
	boolOf := func(key string) (value, set, ok bool) {
		in := get(news, resource.PropertyKey(key))
		switch {
		case !in.Set:
			return false, false, true
		case !in.Known:
			known = false
			return false, true, false
		case !in.V.IsBool():
			fail(key, "%s must be true or false, got a %s", key, in.V.TypeString())
			return false, true, false
		}
		return in.V.BoolValue(), true, true
	}

	// length: required, at least 1, at least the sum of the minimums.
	lengthIn := get(news, "length")
	if !lengthIn.Set {
		fail("length", "Missing required argument: The argument \"length\" is required, but no definition was found.")
	}
	length, lengthOK := intOf("length", 0)
	if lengthIn.Set && lengthOK && length < 1 {
		fail("length", "Attribute length value must be at least 1, got: %d", length)
	}
	mins := map[string]int64{}
	minsOK := true
	for _, key := range []string{"minUpper", "minLower", "minNumeric", "minSpecial"} {
		v, ok := intOf(key, 0)
		if ok && v < 0 {
			// Upstream has no validator here and crashes on a negative count; ours refuses it.
			fail(key, "Attribute %s value must be at least 0, got: %d", tfNames[key], v)
			ok = false
		}
		mins[key] = v
		minsOK = minsOK && ok
	}
	if lengthIn.Set && lengthOK && minsOK {
		sum := mins["minUpper"] + mins["minLower"] + mins["minNumeric"] + mins["minSpecial"]
		if length < sum {
			fail("length", "Attribute length value must be at least sum of min_upper + min_lower + "+
				"min_numeric + min_special, got: %d", length)
		}
	}

	// Booleans default to true; number (deprecated) and numeric follow each other.
	upper, upperSet, upperOK := boolOf("upper")
	lower, lowerSet, lowerOK := boolOf("lower")
	special, specialSet, specialOK := boolOf("special")
	number, numberSet, numberOK := boolOf("number")
	numeric, numericSet, numericOK := boolOf("numeric")
	if numberSet && numericSet && numberOK && numericOK && number != numeric {
		fail("numeric", "Number and numeric are both configured with different values: "+
			"Number is deprecated, use numeric instead")
	}
	if !numericSet && numberSet {
		numeric, numericOK = number, numberOK
	}
	if !numericSet && !numberSet {
		numeric, numericOK = true, true
	}
	allSet := upperSet && lowerSet && specialSet && (numericSet || numberSet)
	allKnown := upperOK && lowerOK && specialOK && numericOK
	if allSet && allKnown && !upper && !lower && !special && !numeric {
		fail("numeric", "Invalid Attribute Combination: At least one attribute out of "+
			"[upper,lower,numeric,special] must be specified as true")
	}

	override := ""
	if in := get(news, "overrideSpecial"); in.Set && !in.Known {
		known = false
	} else if in.Set {
		switch {
		case !in.V.IsString():
			fail("overrideSpecial", "overrideSpecial must be a string, got a %s", in.V.TypeString())
		case !isPrintableASCII(in.V.StringValue()):
			// Upstream draws bytes, so a multi-byte character would be split into invalid
			// UTF-8; ours refuses it instead of producing a broken value.
			fail("overrideSpecial", "overrideSpecial must contain printable ASCII characters (space to ~) only")
		default:
			override = in.V.StringValue()
		}
	}

	if in := get(news, "keepers"); in.Set && in.Known {
		if !in.V.IsObject() {
			fail("keepers", "keepers must be a map of strings, got a %s", in.V.TypeString())
		} else {
			for k, v := range in.V.ObjectValue() {
				e := get(in.V.ObjectValue(), k)
				if e.Set && e.Known && !e.V.IsString() {
					fail("keepers", "keepers.%s must be a string, got a %s", k, v.TypeString())
				}
			}
		}
	}

	if !upperSet {
		upper, upperOK = true, true
	}
	if !lowerSet {
		lower, lowerOK = true, true
	}
	if !specialSet {
		special, specialOK = true, true
	}
	known = known && lengthOK && minsOK && upperOK && lowerOK && specialOK && numericOK
	spec = passwordSpec{
		Length: length, Upper: upper, Lower: lower, Numeric: numeric, Special: special,
		MinUpper: mins["minUpper"], MinLower: mins["minLower"], MinNumeric: mins["minNumeric"],
		MinSpecial: mins["minSpecial"], OverrideSpecial: override,
	}
	return spec, known && len(failures) == 0, failures
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// The RandomPassword input properties, in schema order.
var passwordInputOrder = []string{
	"keepers", "length", "lower", "minLower", "minNumeric", "minSpecial", "minUpper",
	"number", "numeric", "overrideSpecial", "special", "upper",
}

var passwordInputs = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range passwordInputOrder {
		m[k] = true
	}
	return m
}()
