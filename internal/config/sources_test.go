package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/config"
)

// TestCollectorSourcesFromFile: a source's browser settings (allowed
// origins and call types) load from the config file, replace the
// defaults, and are validated.
func TestCollectorSourcesFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tideline.yaml")
	yaml := `collector:
  sources:
    - name: website
      write_key: k3y-for-the-web
      lane: web
      rate_limit: 5000
      allowed_origins: ["https://shop.example.com", "http://localhost:*"]
      allowed_types: [track, page, identify]
    - {name: backend, write_key: k3y-for-servers, lane: server}
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c := ingest.DefaultCollectorConfig()
	if err := config.Load(path, nil, nil, config.Sections{"collector": &c}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != 2 {
		t.Fatalf("sources %+v", c.Sources)
	}
	web := c.Sources[0]
	if web.Name != "website" || web.RateLimit != 5000 || !slices.Equal(web.AllowedOrigins, []string{"https://shop.example.com", "http://localhost:*"}) ||
		!slices.Equal(web.AllowedTypes, []string{"track", "page", "identify"}) {
		t.Errorf("website %+v", web)
	}
	if len(c.Sources[1].AllowedOrigins) != 0 || len(c.Sources[1].AllowedTypes) != 0 {
		t.Errorf("backend %+v", c.Sources[1])
	}

	c.Sources[0].AllowedOrigins = []string{"shop.example.com"}
	c.Sources[0].AllowedTypes = []string{"merge"}
	if err := c.Validate(); err == nil {
		t.Error("an origin without a scheme and an unknown call type were accepted")
	}
}

// TestDemoWebSourceAllowsLocalPages: the demo web source's default
// origins are this machine's, on any port.
func TestDemoWebSourceAllowsLocalPages(t *testing.T) {
	web := ingest.DefaultCollectorConfig().Sources[0]
	if web.WriteKey != "web-demo-key" || !slices.Equal(web.AllowedOrigins, []string{"http://localhost:*", "http://127.0.0.1:*"}) {
		t.Fatalf("demo web source %+v", web)
	}
}
