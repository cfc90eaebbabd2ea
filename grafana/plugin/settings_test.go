package plugin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

func TestLoadSettings(t *testing.T) {
	cases := []struct {
		name    string
		json    string
		secure  map[string]string
		want    Settings
		wantErr string
	}{
		{name: "defaults", json: ``, want: DefaultSettings()},
		{name: "frontend", json: `{"host":"ch","port":9440,"user":"grafana","database":"tl","tlsSkipVerify":true}`, secure: map[string]string{"password": "s3cret"},
			want: Settings{Host: "ch", Port: 9440, User: "grafana", Database: "tl", TLSSkipVerify: true, Password: "s3cret", DialTimeout: 5 * time.Second, QueryTimeout: 30 * time.Second}},
		{name: "provisioning strings", json: `{"host":"clickhouse","port":"9000","secure":"true","queryTimeoutSeconds":"10"}`,
			want: Settings{Host: "clickhouse", Port: 9000, User: "default", Database: "tideline", Secure: true, DialTimeout: 5 * time.Second, QueryTimeout: 10 * time.Second}},
		{name: "password in jsonData is ignored", json: `{"password":"leak"}`, want: DefaultSettings()},
		{name: "bad port", json: `{"port":70000}`, wantErr: "port 70000"},
		{name: "port not a number", json: `{"port":"abc"}`, wantErr: "not a whole number"},
		{name: "url as host", json: `{"host":"http://ch:8123"}`, wantErr: "without scheme"},
		{name: "bad database", json: `{"database":"tl; drop"}`, wantErr: "database"},
		{name: "zero timeout", json: `{"queryTimeoutSeconds":0}`, wantErr: "positive"},
		{name: "not json", json: `{`, wantErr: "jsonData"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := LoadSettings(backend.DataSourceInstanceSettings{JSONData: []byte(c.json), DecryptedSecureJSONData: c.secure})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrSettings) {
					t.Fatalf("err = %v, want ErrSettings mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
