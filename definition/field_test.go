package definition

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseFieldPath(t *testing.T) {
	tests := []struct {
		in   string
		want FieldPath
		err  string
	}{
		{in: "amount", want: FieldPath{SourceProperties, []string{"amount"}}},
		{in: "address.country", want: FieldPath{SourceProperties, []string{"address", "country"}}},
		{in: "$price", want: FieldPath{SourceProperties, []string{"$price"}}},
		{in: "contextual", want: FieldPath{SourceProperties, []string{"contextual"}}},
		{in: "context.campaign.source", want: FieldPath{SourceContext, []string{"campaign", "source"}}},
		{in: "context.page.path", want: FieldPath{SourceContext, []string{"page", "path"}}},
		{in: "context.locale", want: FieldPath{SourceContext, []string{"locale"}}},
		{in: "context.ip", want: FieldPath{SourceContext, []string{"ip"}}},
		{in: "context.userAgent", want: FieldPath{SourceContext, []string{"userAgent"}}},
		{in: "context.app_flavour", want: FieldPath{SourceContext, []string{"app_flavour"}}},
		{in: "", err: "empty path"},
		{in: "context", err: `"context" names the whole context: name a field in it, e.g. context.campaign.source`},
		{in: "context.", err: `"context." is not a property path`},
		{in: "context..page", err: `"context..page" is not a property path`},
		{in: ".amount", err: `".amount" is not a property path`},
		{in: "amount.", err: `"amount." is not a property path`},
		{in: "context.page path", err: `"context.page path" is not a property path`},
		{in: "context.user_agent", err: `"context.user_agent": the SDKs send context.userAgent`},
		{in: "context.utm_source", err: `"context.utm_source": the SDKs send context.campaign.source`},
		{in: "context.campaign.utm_campaign", err: `"context.campaign.utm_campaign": the SDKs send context.campaign.name`},
		{in: "context.group_id", err: `"context.group_id": the SDKs send context.groupId`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFieldPath(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseFieldPath(%q) error = %v, want one containing %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFieldPath(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseFieldPath(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}
