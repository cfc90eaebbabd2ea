package materialize_test

import (
	"errors"
	"fmt"

	"github.com/tideline-dev/tideline/materialize"
)

func ExampleParseAudience() {
	a, err := materialize.ParseAudience("gold_repeat_buyers.yaml", []byte(`
id: gold_repeat_buyers
name: Gold plan, 2+ purchases in 7 days
when:
  all:
    - attribute: plan
      equals: gold
    - performed: purchase
      at_least: 2
      within: 1.5w
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := a.When.Children[1]
	fmt.Println(a.ID, a.When.Kind == materialize.KindAll, len(a.When.Children), p.Event, *p.AtLeast, materialize.FormatWindow(p.Within))

	_, err = materialize.ParseAudience("bad.yaml", []byte(`
id: bad
when:
  performed: purchase
  within: 7days
`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, materialize.ErrInvalidDefinition))
	// Output:
	// gold_repeat_buyers true 2 purchase 2 252h
	// bad.yaml:5:11: when.within: "7days" is not a duration: unknown unit "days"; write numbers each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g. 15m, 7d or 1d12h
	// true
}
