// The Go baseline: what a team that knows Go writes for the product aggregate, plainly and
// correctly, with the standard library only. One shared http.Client (keep-alive pool sized
// for the load), the four upstream calls concurrently under one context deadline, each answer
// decoded into its type (a malformed one is that part's failure), failures reported per part,
// the product critical, the id validated and path-escaped. The answer has web-bff's shape.
//
//	go build -o go_gateway . && ./go_gateway --port 8202   (upstream URLs from the environment)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

type Product struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Category    string         `json:"category"`
	Images      []string       `json:"images"`
	Attributes  map[string]any `json:"attributes"`
}

type Warehouse struct {
	ID  string `json:"id"`
	Qty int    `json:"qty"`
}

type Inventory struct {
	ProductID  string      `json:"product_id"`
	InStock    bool        `json:"in_stock"`
	Quantity   int         `json:"quantity"`
	Warehouses []Warehouse `json:"warehouses"`
}

type Price struct {
	ProductID   string `json:"product_id"`
	Currency    string `json:"currency"`
	Amount      int    `json:"amount"`
	DiscountPct int    `json:"discount_pct"`
}

type Review struct {
	Author string `json:"author"`
	Stars  int    `json:"stars"`
	Text   string `json:"text"`
}

type Reviews struct {
	ProductID string   `json:"product_id"`
	Average   float64  `json:"average"`
	Count     int      `json:"count"`
	Top       []Review `json:"top"`
}

type PartError struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
	Status int    `json:"status,omitempty"`
}

type ProductPage struct {
	Product   *Product    `json:"product"`
	Inventory *Inventory  `json:"inventory"`
	Pricing   *Price      `json:"pricing"`
	Reviews   *Reviews    `json:"reviews"`
	Errors    []PartError `json:"errors,omitempty"`
}

type Failure struct {
	Status int         `json:"status"`
	Errors []PartError `json:"errors"`
}

type gateway struct {
	client  *http.Client
	timeout time.Duration
	bases   [4]string
}

var paths = [4]string{"/products/", "/inventory/", "/prices/", "/reviews/"}
var names = [4]string{"product", "inventory", "pricing", "reviews"}

// fetch GETs url into value; nil, or why the part failed.
func (g *gateway) fetch(ctx context.Context, name, url string, value any) *PartError {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &PartError{Source: name, Reason: "invalid_request"}
	}
	request.Header.Set("Accept", "application/json")
	response, err := g.client.Do(request)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &PartError{Source: name, Reason: "timeout"}
		}
		return &PartError{Source: name, Reason: "unavailable"}
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		// Read to the end, so that the connection goes back to the pool.
		_, _ = io.Copy(io.Discard, response.Body)
		return &PartError{Source: name, Reason: "upstream_status", Status: response.StatusCode}
	}
	if err := json.NewDecoder(response.Body).Decode(value); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &PartError{Source: name, Reason: "timeout"}
		}
		return &PartError{Source: name, Reason: "invalid_response"}
	}
	return nil
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 32 || c == 127 {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, value any) {
	body, err := json.Marshal(value)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (g *gateway) product(w http.ResponseWriter, r *http.Request) {
	ids := r.URL.Query()["id"]
	if len(ids) != 1 || !validID(ids[0]) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"title": "Invalid id", "status": 400})
		return
	}
	segment := url.PathEscape(ids[0])
	ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
	defer cancel()

	var page ProductPage
	page.Product, page.Inventory, page.Pricing, page.Reviews = &Product{}, &Inventory{}, &Price{}, &Reviews{}
	values := [4]any{page.Product, page.Inventory, page.Pricing, page.Reviews}
	var failures [4]*PartError
	var wg sync.WaitGroup
	wg.Add(len(values))
	for i := range values {
		go func(i int) {
			defer wg.Done()
			failures[i] = g.fetch(ctx, names[i], g.bases[i]+paths[i]+segment, values[i])
		}(i)
	}
	wg.Wait()

	for i, failure := range failures {
		if failure == nil {
			continue
		}
		page.Errors = append(page.Errors, *failure)
		switch i {
		case 0:
			page.Product = nil
		case 1:
			page.Inventory = nil
		case 2:
			page.Pricing = nil
		case 3:
			page.Reviews = nil
		}
	}
	if failure := failures[0]; failure != nil {
		status := http.StatusBadGateway
		if failure.Status == http.StatusNotFound {
			status = http.StatusNotFound
		} else if failure.Reason == "timeout" {
			status = http.StatusGatewayTimeout
		}
		writeJSON(w, status, Failure{Status: status, Errors: page.Errors})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8202, "port to listen on")
	flag.Parse()

	timeoutMS, err := strconv.Atoi(env("BFF_TIMEOUT_MS", "1000"))
	if err != nil || timeoutMS <= 0 {
		log.Fatalf("BFF_TIMEOUT_MS must be a positive number of milliseconds")
	}
	upstream := "http://127.0.0.1:9000"
	g := &gateway{
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024, // the default (2) would open and close connections under load
			IdleConnTimeout:     90 * time.Second,
		}},
		timeout: time.Duration(timeoutMS) * time.Millisecond,
		bases: [4]string{
			env("PRODUCT_SERVICE_URL", upstream),
			env("INVENTORY_SERVICE_URL", upstream),
			env("PRICING_SERVICE_URL", upstream),
			env("REVIEWS_SERVICE_URL", upstream),
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/aggregated/product", g.product)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	server := &http.Server{
		Addr:              fmt.Sprintf("%s:%d", *host, *port),
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(server.ListenAndServe())
}
