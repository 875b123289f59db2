package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
)

type openAPIOperation struct {
	Security   *[]map[string][]string `json:"security"`
	Parameters []map[string]any       `json:"parameters"`
	Responses  map[string]any         `json:"responses"`
}

type openAPIDocument struct {
	OpenAPI    string                                 `json:"openapi"`
	Paths      map[string]map[string]openAPIOperation `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Enum []string `json:"enum"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) (openAPIDocument, map[string]any) {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(openAPIDoc, &raw); err != nil {
		t.Fatal(err)
	}
	return doc, raw
}

// TestOpenAPIMatchesRoutes keeps the hand-written document honest: every
// operation it lists is served by the mux at that very pattern, every
// route of the mux is in it, and the routes it marks public are the ones
// served without a token.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	doc, _ := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	documented := map[string]openAPIOperation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}
	served := map[string]route{}
	for _, rt := range s.routes {
		served[rt.pattern] = rt
	}
	for pattern, op := range documented {
		rt, ok := served[pattern]
		if !ok {
			t.Errorf("%s is documented but not served", pattern)
			continue
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != rt.public {
			t.Errorf("%s: documented public=%v, served public=%v", pattern, public, rt.public)
		}
		// Ask the mux itself, not the table: the request the document
		// describes must reach this pattern.
		method, path, _ := strings.Cut(pattern, " ")
		r := httptest.NewRequest(method, strings.ReplaceAll(path, "{number}", url.PathEscape("+79990001122")), nil)
		if _, got := s.mux.Handler(r); got != pattern {
			t.Errorf("%s %s reaches pattern %q, want %q", method, r.URL.Path, got, pattern)
		}
		if strings.Contains(path, "{number}") && !hasNumberParam(op) {
			t.Errorf("%s does not document its {number} parameter", pattern)
		}
		if !public {
			if _, ok := op.Responses["401"]; !ok {
				t.Errorf("%s does not document its 401", pattern)
			}
		}
	}
	for pattern := range served {
		if _, ok := documented[pattern]; !ok {
			t.Errorf("%s is served but not documented", pattern)
		}
	}
}

func hasNumberParam(op openAPIOperation) bool {
	for _, p := range op.Parameters {
		if p["$ref"] == "#/components/parameters/Number" || (p["name"] == "number" && p["in"] == "path") {
			return true
		}
	}
	return false
}

// TestOpenAPINamesTheCatalogue checks that the document's ProblemCode enum
// is the catalogue, and that every $ref in it resolves.
func TestOpenAPINamesTheCatalogue(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	var codes []string
	for _, p := range Catalogue() {
		codes = append(codes, p.Code)
	}
	enum := slices.Clone(doc.Components.Schemas["ProblemCode"].Enum)
	sort.Strings(codes)
	sort.Strings(enum)
	if !slices.Equal(codes, enum) {
		t.Errorf("ProblemCode enum %v, catalogue %v", enum, codes)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if err := resolve(raw, ref); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			}
			for k, c := range v {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s/%d", path, i), c)
			}
		}
	}
	walk("#", raw)
}

func resolve(raw map[string]any, ref string) error {
	if !strings.HasPrefix(ref, "#/") {
		return fmt.Errorf("$ref %q is not local", ref)
	}
	var cur any = raw
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return fmt.Errorf("$ref %q: %q is not an object", ref, part)
		}
		if cur, ok = m[part]; !ok {
			return fmt.Errorf("$ref %q: no %q", ref, part)
		}
	}
	return nil
}
