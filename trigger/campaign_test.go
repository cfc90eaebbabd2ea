package trigger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/golden"
)

// TestInvalidCampaigns checks that every broken definition in
// testdata/invalid is refused with errors naming file, line and field.
func TestInvalidCampaigns(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test definitions: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseCampaign(f, data)
			if err == nil {
				t.Fatal("accepted")
			}
			var de *DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DefinitionError", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("error line %q does not start with the file and line", line)
				}
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")[len("testdata/"):]+".err", []byte(err.Error()+"\n"))
		})
	}
}

func TestValidCampaign(t *testing.T) {
	cs, err := LoadCampaigns("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if c.ID != "everything" || c.Active || c.Trigger.Kind != TriggerEvent || c.Trigger.Event.Name != "purchase" {
		t.Fatalf("campaign = %+v", c)
	}
	if got := len(c.Trigger.Event.Where); got != 6 {
		t.Errorf("%d conditions, want 6: %v", got, c.Trigger.Event.Where)
	}
	if u := c.Trigger.Unless; u == nil || u.Within != 150*time.Minute || u.Event.Name != "refund" || len(u.Event.Where) != 1 {
		t.Errorf("unless = %+v", u)
	}
	if c.Staleness != (Staleness{Budget: 36 * time.Hour, Late: LateFire}) {
		t.Errorf("staleness = %+v", c.Staleness)
	}
	if c.Reeligible != (Reeligibility{After: 14 * 24 * time.Hour}) || *c.Cap != (FrequencyCap{Max: 5, Per: 7 * 24 * time.Hour}) {
		t.Errorf("reeligible = %+v, cap = %+v", c.Reeligible, c.Cap)
	}
	w := c.Deliver.Webhook
	if w == nil || w.URL != "https://hooks.example.test/purchase?x=1" || w.SecretEnv != "PURCHASE_SECRET" || w.PreviousSecretEnv != "PURCHASE_SECRET_OLD" || c.Deliver.KafkaTopic != "campaign.fires" {
		t.Errorf("deliver = %+v %+v", c.Deliver, w)
	}
	if len(c.Destinations()) != 2 || c.Version == "" || c.Name != "Every option" {
		t.Errorf("destinations %v, version %q", c.Destinations(), c.Version)
	}
}

// TestDefaultCampaigns checks the shipped examples and the text of list
// and explain against goldens.
func TestDefaultCampaigns(t *testing.T) {
	cs, err := DefaultCampaigns()
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := LoadCampaigns("campaigns")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || len(fromDir) != 3 {
		t.Fatalf("%d embedded and %d on disk, want 3", len(cs), len(fromDir))
	}
	var list bytes.Buffer
	if err := List(&list, fromDir); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "explain/list.txt", list.Bytes())
	for _, c := range fromDir {
		var b bytes.Buffer
		if err := Explain(&b, c, DefaultConfig(), ""); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "explain/"+c.ID+".txt", b.Bytes())
	}
	warn := Warnings(cs, func(string) string { return "" })
	if len(warn) != 3 || !strings.Contains(warn[0], "WELCOME_SECRET") && !strings.Contains(strings.Join(warn, "\n"), "WELCOME_SECRET") {
		t.Errorf("warnings without secrets: %v", warn)
	}
}

func TestDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	def := "id: same\ntrigger: {audience_entered: a}\nstaleness: {budget: 1h}\nreeligible_after: never\ndeliver: {kafka_topic: t}\n"
	for _, n := range []string{"a.yaml", "b.yml"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadCampaigns(dir)
	if err == nil || !strings.Contains(err.Error(), "b.yml:1: id: campaign id \"same\" is already used by") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadCampaigns(t.TempDir()); !errors.Is(err, ErrNoCampaigns) {
		t.Fatalf("empty folder: %v", err)
	}
}

// TestSafetyCampaigns loads a folder with a policy file and a campaign
// using every control, and checks explain's account of them against a
// golden file.
func TestSafetyCampaigns(t *testing.T) {
	cs, err := LoadCampaigns("testdata/safety")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d campaigns, want 2 (the policy file is not one)", len(cs))
	}
	for _, c := range cs {
		p := c.Policy
		if p == nil || len(p.Caps) != 2 || p.Caps[1] != (GlobalCap{Max: 1, Per: 4 * time.Hour, Group: "promotions"}) ||
			*p.QuietHours != (QuietHours{From: 21 * 3600, To: 8 * 3600, Policy: QuietDefer}) || p.TimeZone.Default != "Europe/Paris" {
			t.Fatalf("%s: policy = %+v", c.ID, p)
		}
		var b bytes.Buffer
		if err := Explain(&b, c, DefaultConfig(), "prod."); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "explain/safety_"+c.ID+".txt", b.Bytes())
	}
	sale := cs[1]
	if sale.ID != "spring_sale" || sale.Consent.Attribute != "email_opt_in" || sale.Consent.Equals != true ||
		*sale.Quiet != (QuietHours{From: 20*3600 + 1800, To: 9 * 3600, Policy: QuietSkip}) ||
		*sale.Deliver.Webhook.Throttle != (Throttle{Rate: 200, Burst: 20}) || sale.Template == nil {
		t.Fatalf("spring_sale = %+v", sale)
	}
	q := Qualification{CampaignID: "spring_sale", CustomerID: "ada", AudienceID: "sale_prospects", Episode: "1", EventTimeMs: 1}
	e := newEntry(q, Decision{Action: FireLate}, 2, OriginPoller)
	b, err := buildBody(sale, q, e, Decision{Action: FireLate}, map[string]any{"first_name": `Ada "the first"`})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"to": "ada",
 "name": "Ada \"the first\"",
 "late": true,
 "webhook_id": "` + e.Key + `"}
`
	if string(b) != want {
		t.Errorf("rendered body:\n%s\nwant:\n%s", b, want)
	}
}

// TestProfileReadGolden keeps the payload's profile read in a golden file,
// which sql/conformance runs on both ClickHouse versions.
func TestProfileReadGolden(t *testing.T) {
	golden.Check(t, "profiles.sql", []byte(qProfiles+";\n"))
}
