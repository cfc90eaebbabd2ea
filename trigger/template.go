package trigger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// BodyTemplate shapes a campaign's webhook body: a Go text/template over
// TemplateData whose output must be JSON. It is rendered once, when the
// fire is decided, and the bytes are stored with the ledger entry, so every
// retry and redelivery sends what was rendered then.
type BodyTemplate struct {
	Source string
	t      *template.Template
}

// TemplateData is what a body template sees.
type TemplateData struct {
	WebhookID  string
	CustomerID string
	Campaign   BodyCampaign
	// Attributes are the customer's attributes when the fire was decided.
	Attributes map[string]any
	// Qualification describes what qualified the customer.
	Qualification TemplateQualification
	Late          bool
	LagMs         uint64
	DetectedAt    string
}

// TemplateQualification is the qualification as a template sees it.
type TemplateQualification struct {
	Kind       string
	AudienceID string
	Episode    string
	Event      string
	MessageID  string
	Lane       string
	EventTime  string
	Properties map[string]any
	// Context is the triggering event's context, e.g.
	// {{json .Qualification.Context.campaign.name}}.
	Context map[string]any
}

// templateFuncs are the functions a body template may call. json encodes
// a value (strings quoted and escaped), so a template writes
// {"name": {{json .Attributes.name}}} and stays valid JSON whatever the
// value holds; default replaces a missing value.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"default": func(def, v any) any {
		if v == nil || v == "" {
			return def
		}
		return v
	},
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

var templateLineRe = regexp.MustCompile(`^template: [^:]*:(\d+):(?:\d+:)? ?(.*)$`)

// parseBodyTemplate parses and checks a body template: it must parse, and
// rendering it for a sample fire must give JSON. Errors carry the line
// within the template (1-based) for the caller to offset into its file.
func parseBodyTemplate(src string) (*BodyTemplate, int, error) {
	t, err := template.New("body").Option("missingkey=zero").Funcs(templateFuncs).Parse(src)
	if err != nil {
		line, msg := templateErrorLine(err)
		return nil, line, fmt.Errorf("template: %s", msg)
	}
	bt := &BodyTemplate{Source: src, t: t}
	sample := TemplateData{
		WebhookID: "msg_0", CustomerID: "u1", Campaign: BodyCampaign{ID: "c", Name: "c", Version: "v"},
		Attributes:    map[string]any{"name": "Ada", "timezone": "Europe/Paris"},
		Qualification: TemplateQualification{Kind: "event", Episode: "1", Properties: map[string]any{}, Context: map[string]any{}},
		DetectedAt:    msTime(1),
	}
	out, err := bt.Render(sample)
	if err != nil {
		line, msg := templateErrorLine(err)
		return nil, line, fmt.Errorf("template: %s", msg)
	}
	if !json.Valid(out) {
		return nil, 0, fmt.Errorf("template: renders %q for a sample fire, which is not JSON: quote values with {{json .X}}", truncateErr(string(out)))
	}
	return bt, 0, nil
}

func templateErrorLine(err error) (int, string) {
	m := templateLineRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, err.Error()
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2]
}

// Render executes the template.
func (bt *BodyTemplate) Render(d TemplateData) ([]byte, error) {
	var b bytes.Buffer
	if err := bt.t.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
