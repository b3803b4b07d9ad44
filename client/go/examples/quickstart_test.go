package examples_test

import (
	"context"
	"fmt"
	"log"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
)

// Example connects, writes a key and reads it back.
func Example() {
	ctx := context.Background()
	conn, err := coord.Dial(target, coord.Insecure())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	cache := cachev1.NewCacheServiceClient(conn)
	if _, err := cache.Set(ctx, &cachev1.SetRequest{Key: "greeting", Value: []byte("hello")}); err != nil {
		log.Fatal(err)
	}
	got, err := cache.Get(ctx, &cachev1.GetRequest{Key: "greeting"})
	fmt.Println(string(got.GetEntry().GetValue()), err)
	// Output: hello <nil>
}
