package materialize

import (
	"errors"
	"testing"
)

// FuzzParseAudience feeds arbitrary YAML to the audience parser and compiler.
// Invariants: no panic; a rejected definition is a DefinitionError naming
// the file; an accepted one compiles or is refused with an error.
func FuzzParseAudience(f *testing.F) {
	for _, s := range []string{
		"id: gold_repeat_buyers\nname: Gold\nwhen:\n  all:\n    - attribute: plan\n      equals: gold\n    - performed: purchase\n      at_least: 2\n      within: 7d\n",
		"id: big\nwhen:\n  performed: purchase\n  sum: amount\n  at_least: 500\n  within: 30d\n",
		"id: n\nwhen:\n  not:\n    performed: purchase\n    within: 1d\n",
		"id: q\nwhen:\n  attribute: plan\n  in: [\"a'\", \"b\\\\\"]\n",
		"id: x\nwhen: {any: [{attribute: age, gte: 18}, {attribute: country, exists: true}]}\n",
		"id: \"bad id\"\nwhen: {}\n", ":", "- - -", "id: [1, 2]", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		a, err := ParseAudience("fuzz.yaml", src)
		if err != nil {
			var de *DefinitionError
			var des DefinitionErrors
			if !errors.As(err, &de) && !errors.As(err, &des) && !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("rejection is not a definition error: %T %v", err, err)
			}
			return
		}
		_, _ = Compile([]*Audience{a}, AttributeSettings{})
	})
}
