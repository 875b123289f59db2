package crm

import (
	"encoding/json"
	"os"
	"testing"
)

// The contract document says what the client does: the query parameter
// it sends, and an example answer it reads as a VIP.
func TestOpenAPIDocumentMatchesTheClient(t *testing.T) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]struct {
			Get struct {
				Parameters []struct{ Name, In string }
				Responses  map[string]struct {
					Content map[string]struct {
						Example json.RawMessage `json:"example"`
					} `json:"content"`
				} `json:"responses"`
			} `json:"get"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	get := doc.Paths["/"].Get
	if doc.OpenAPI == "" || len(get.Parameters) != 1 || get.Parameters[0].Name != "number" || get.Parameters[0].In != "query" {
		t.Fatalf("document: %+v", doc)
	}
	for _, code := range []string{"200", "404", "default"} {
		if _, ok := get.Responses[code]; !ok {
			t.Errorf("no %s response", code)
		}
	}
	cu, err := Parse(get.Responses["200"].Content["application/json"].Example)
	if err != nil || !cu.VIP || cu.Name == "" || cu.Segment == "" {
		t.Fatalf("the example answer reads as %+v, %v", cu, err)
	}
}
