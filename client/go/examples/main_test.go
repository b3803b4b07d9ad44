package examples_test

import (
	"fmt"
	"log"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	"google.golang.org/grpc"
)

// target is the address of the server under test (COORD_TARGET), such as "127.0.0.1:50051".
var target string

// conn is one connection shared by the examples and tests, as a program would share one.
var conn *grpc.ClientConn

// run tells this run's names apart from an earlier run's against the same server.
var run = strconv.FormatInt(time.Now().UnixNano(), 36)

func TestMain(m *testing.M) {
	target = os.Getenv("COORD_TARGET")
	if target == "" {
		fmt.Fprintln(os.Stderr, "COORD_TARGET is not set: these examples need a live Coord server (host:port); none ran")
		os.Exit(0)
	}
	var err error
	conn, err = coord.Dial(target, coord.Insecure())
	if err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	conn.Close()
	os.Exit(code)
}

// name is a key, lock, topic or subject of its own for one test of this run.
func name(t *testing.T) string {
	return t.Name() + ":" + run
}
