package definition

import (
	"fmt"
	"regexp"
	"strings"
)

// Source is the part of a message an event filter's path reads.
type Source string

// The parts of a message a path can read.
const (
	// SourceProperties is the event's properties: any path that does not
	// start with "context.".
	SourceProperties Source = "properties"
	// SourceContext is the message's context (campaign, page, ip,
	// userAgent, locale, library, ...), read by paths starting "context.".
	SourceContext Source = "context"
)

// FieldPath is a dotted path in an event filter, split into the part of
// the message it reads and the names to follow there.
type FieldPath struct {
	Source Source
	// Names are followed through nested objects, e.g. [campaign source]
	// for "context.campaign.source".
	Names []string
}

// String writes the path back as it is spelt in a definition.
func (p FieldPath) String() string {
	s := strings.Join(p.Names, ".")
	if p.Source == SourceContext {
		return "context." + s
	}
	return s
}

var fieldNameRe = regexp.MustCompile(`^[A-Za-z0-9_$][A-Za-z0-9_$-]*$`)

// contextSpelling maps what people write by habit (the events columns'
// snake_case, the utm_ parameters) to the context field the SDKs send, so
// a filter that would silently never match is refused with the right name.
var contextSpelling = map[string]string{
	"user_agent":      "userAgent",
	"useragent":       "userAgent",
	"user_agent_data": "userAgentData",
	"group_id":        "groupId",
	"utm_source":      "campaign.source",
	"utm_medium":      "campaign.medium",
	"utm_campaign":    "campaign.name",
	"utm_term":        "campaign.term",
	"utm_content":     "campaign.content",
}

// campaignSpelling does the same inside context.campaign, where
// analytics.js strips the utm_ prefix and calls utm_campaign "name".
var campaignSpelling = map[string]string{
	"utm_source":   "source",
	"utm_medium":   "medium",
	"utm_campaign": "name",
	"utm_term":     "term",
	"utm_content":  "content",
	"campaign":     "name",
}

// ParseFieldPath reads an event filter's path: "context.campaign.source"
// reads the message's context, anything else ("amount", "address.city")
// the event's properties. The error says what to write instead.
func ParseFieldPath(s string) (FieldPath, error) {
	if s == "" {
		return FieldPath{}, fmt.Errorf("empty path: name a property, e.g. amount, or a context field, e.g. context.campaign.source")
	}
	names := strings.Split(s, ".")
	for _, n := range names {
		if !fieldNameRe.MatchString(n) {
			return FieldPath{}, fmt.Errorf("%q is not a property path (names of letters, digits, _ $ - separated by single dots)", s)
		}
	}
	if names[0] != string(SourceContext) {
		return FieldPath{Source: SourceProperties, Names: names}, nil
	}
	if len(names) == 1 {
		return FieldPath{}, fmt.Errorf("%q names the whole context: name a field in it, e.g. context.campaign.source, context.page.path or context.locale", s)
	}
	names = names[1:]
	if fix, ok := contextSpelling[names[0]]; ok {
		return FieldPath{}, fmt.Errorf("%q: the SDKs send context.%s", s, strings.Join(append([]string{fix}, names[1:]...), "."))
	}
	if names[0] == "campaign" && len(names) > 1 {
		if fix, ok := campaignSpelling[names[1]]; ok {
			return FieldPath{}, fmt.Errorf("%q: the SDKs send context.campaign.%s", s, strings.Join(append([]string{fix}, names[2:]...), "."))
		}
	}
	return FieldPath{Source: SourceContext, Names: names}, nil
}
