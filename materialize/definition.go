package materialize

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/definition"
)

// Audience is one audience definition, as read from its YAML file.
type Audience struct {
	// ID names the audience everywhere (tables, campaigns, panels).
	ID string
	// Name is the human name.
	Name string
	// Description is optional prose.
	Description string
	// When is the membership condition.
	When *Condition
	// Lanes, when given, are the lanes that can carry the audience's
	// inputs, replacing what the lanes have been seen to carry: the
	// audience waits only for these lanes' watermarks.
	Lanes []string
	// Completeness is the policy for attribute conditions: CompletenessWatermark
	// (the default) or CompletenessEager.
	Completeness Completeness
	// File is where the definition was read from.
	File string
	// Source is the YAML as read; `apply` stores it.
	Source []byte
}

// Completeness says whether an audience's attribute conditions wait for the
// watermark of the lanes that carry traits. Event conditions need no policy:
// whether late events can falsify them follows from their kind (see
// Direction).
type Completeness string

// Completeness policies.
const (
	// CompletenessWatermark decides attribute conditions only up to the
	// watermark of the lanes that carry traits: a late identify with a newer
	// value cannot make a decision that then proves wrong, at the price of
	// waiting while such a lane is stalled.
	CompletenessWatermark Completeness = "watermark"
	// CompletenessEager decides attribute conditions on the values present:
	// nothing waits for a stalled lane, but an identify still queued there
	// with a newer value can change a decision already made (an entry
	// followed by an exit once it arrives).
	CompletenessEager Completeness = "eager"
)

// Kind says what a Condition tests.
type Kind int

// Condition kinds.
const (
	KindAll Kind = iota + 1
	KindAny
	KindNot
	KindAttribute
	KindPerformed
)

// Condition is a node of an audience's condition tree.
type Condition struct {
	Kind Kind
	// Children of all and any; the one child of not.
	Children []*Condition

	// Attribute and Pred for KindAttribute.
	Attribute string
	Pred      *Predicate

	// For KindPerformed: the event, its type (track, page, screen or
	// group), property filters, the window (0: ever), the bounds on the
	// count (or on the sum of the Sum property), and Negated for
	// not_performed. A group condition names the groupId in Group ("" for
	// any group; Event is then ''), and its filters read the group's traits
	// as the customer's group call sent them.
	Event   string
	Group   string
	Type    string
	Where   []*PropertyFilter
	Within  time.Duration
	AtLeast *float64
	AtMost  *float64
	Sum     string
	Negated bool

	// Field is the path of this node in its file, for messages.
	Field string
}

// PropertyFilter restricts a performed condition to events whose property
// satisfies Pred.
type PropertyFilter struct {
	// Property is a top-level property name, or a context path
	// (context.campaign.source) one of the events table's typed context
	// columns holds.
	Property string
	// Column is that typed column for a context path, "" for a property.
	Column string
	Pred   *Predicate
}

// contextColumns are the context paths a property filter can read, and the
// typed events columns the loader keeps them in.
var contextColumns = map[string]string{
	"context.campaign.source":  "context_campaign_source",
	"context.campaign.medium":  "context_campaign_medium",
	"context.campaign.name":    "context_campaign_name",
	"context.campaign.term":    "context_campaign_term",
	"context.campaign.content": "context_campaign_content",
	"context.page.url":         "context_page_url",
	"context.page.path":        "context_page_path",
	"context.page.referrer":    "context_page_referrer",
	"context.page.title":       "context_page_title",
	"context.ip":               "context_ip",
	"context.userAgent":        "context_user_agent",
	"context.locale":           "context_locale",
	"context.timezone":         "context_timezone",
	"context.library.name":     "context_library_name",
	"context.library.version":  "context_library_version",
}

// contextColumn is the typed column of a context path, or an error saying
// which paths there are.
func contextColumn(path string) (string, error) {
	fp, err := definition.ParseFieldPath(path)
	if err != nil {
		return "", err
	}
	if col, ok := contextColumns[fp.String()]; ok {
		return col, nil
	}
	paths := make([]string, 0, len(contextColumns))
	for p := range contextColumns {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return "", fmt.Errorf("%q is not a context field audiences filter on: use one of %s", path, strings.Join(paths, ", "))
}

// Op is a comparison operator.
type Op string

// Operators of attribute conditions and property filters.
const (
	OpEquals    Op = "equals"
	OpNotEquals Op = "not_equals"
	OpIn        Op = "in"
	OpNotIn     Op = "not_in"
	OpLt        Op = "lt"
	OpLte       Op = "lte"
	OpGt        Op = "gt"
	OpGte       Op = "gte"
	OpExists    Op = "exists"
)

var predicateOps = []Op{OpEquals, OpNotEquals, OpIn, OpNotIn, OpLt, OpLte, OpGt, OpGte, OpExists}

// Predicate compares one value (an attribute, or an event property).
type Predicate struct {
	Op Op
	// Values holds the operand: one value, or the list of in / not_in.
	Values []Value
	// Exists is the operand of exists.
	Exists bool
}

// Value is a literal from a definition. Strings compare as text, numbers
// numerically (the stored value parsed as a number), booleans as the JSON
// words true and false.
type Value struct {
	Kind ValueKind
	Str  string
	Num  float64
	Bool bool
}

// ValueKind is the type of a Value.
type ValueKind int

// Value kinds.
const (
	ValueString ValueKind = iota + 1
	ValueNumber
	ValueBool
)

func (v Value) String() string {
	switch v.Kind {
	case ValueNumber:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case ValueBool:
		return strconv.FormatBool(v.Bool)
	default:
		return strconv.Quote(v.Str)
	}
}

// Limits on definitions: they keep generated SQL and evaluation cost bounded.
const (
	maxDepth      = 12
	maxConditions = 64
	maxInValues   = 1000
	maxNameLen    = 200
	maxWindow     = 3650 * 24 * time.Hour
)

var (
	idRe        = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	attributeRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// validAttributeName reports whether s can name a maintained attribute:
// letters, digits and underscores, as the attribute's view is named after it.
func validAttributeName(s string) bool { return attributeRe.MatchString(s) }
