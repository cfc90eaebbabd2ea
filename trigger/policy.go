package trigger

import (
	"errors"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// PolicyFile is the file of a campaigns folder that holds the controls
// shared by every campaign (global caps, default quiet hours, time zone).
// Files whose names start with "_" are not campaigns.
const PolicyFile = "_policy.yaml"

type rawPolicy struct {
	FrequencyCaps []rawGlobalCap `yaml:"frequency_caps"`
	QuietHours    *rawQuiet      `yaml:"quiet_hours"`
	TimeZone      *rawTimeZone   `yaml:"timezone"`
}

type rawGlobalCap struct {
	Max   any    `yaml:"max"`
	Per   any    `yaml:"per"`
	Group string `yaml:"group"`
}

type rawTimeZone struct {
	Attribute string `yaml:"attribute"`
	Default   string `yaml:"default"`
}

// parsePolicy parses and validates a policy file. Errors name the file,
// the line and the field, as campaign errors do.
func parsePolicy(file string, data []byte) (*Policy, error) {
	astFile, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(file, err)
	}
	if len(astFile.Docs) != 1 || astFile.Docs[0].Body == nil {
		return nil, &DefinitionError{File: file, Line: 1, Msg: "want exactly one YAML document holding the policy"}
	}
	body := astFile.Docs[0].Body
	var raw rawPolicy
	if err := yaml.NodeToValue(body, &raw, yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(file, err)
	}
	v := &validator{file: file, root: body}
	p := &Policy{File: file}
	for i, rc := range raw.FrequencyCaps {
		g := GlobalCap{Per: v.duration("frequency_caps.per", rc.Per, true), Group: rc.Group}
		n, ok := asInt(rc.Max)
		if !ok || n < 1 {
			v.fail("frequency_caps", "cap %d: max wants a whole number of sends of at least 1, got %v", i+1, rc.Max)
		}
		if rc.Group != "" && !campaignIDRe.MatchString(rc.Group) {
			v.fail("frequency_caps", "cap %d: group %q: use lower-case letters, digits and underscores", i+1, rc.Group)
		}
		g.Max = n
		p.Caps = append(p.Caps, g)
	}
	if raw.QuietHours != nil {
		p.QuietHours = v.quiet("quiet_hours", raw.QuietHours)
	}
	if tz := raw.TimeZone; tz != nil {
		if tz.Attribute != "" && !propertyRe.MatchString(tz.Attribute) {
			v.fail("timezone.attribute", "%q is not an attribute name", tz.Attribute)
		}
		if tz.Default != "" {
			if _, err := location(tz.Default); err != nil {
				v.fail("timezone.default", "%v", err)
			}
		}
		p.TimeZone = TimeZone{Attribute: tz.Attribute, Default: tz.Default}
	}
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return p, nil
}
