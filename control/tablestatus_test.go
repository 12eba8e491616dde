package control

import (
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/control/api"
)

// TestTableStatus fills a small table past its capacity, so the counters
// differ from one another, and checks each lands in its own field.
func TestTableStatus(t *testing.T) {
	ct, err := conntrack.New(conntrack.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		k := conntrack.Key{CPort: uint16(1024 + i), VPort: 80, Proto: 6}
		k.CAddr[15], k.CAddr[14] = byte(i), byte(i>>8)
		k.VAddr[15] = 1
		ct.Insert(&k, 0, 0, 0, conntrack.EvSyn)
	}
	s := ct.Stats()
	if s.Inserted == s.Entries || s.Entries == s.Capacity && s.Evicted == 0 && s.Refused == 0 {
		t.Fatalf("the table did not overflow: %+v", s)
	}
	want := api.TableStatus{Entries: s.Entries, Templates: s.Templates, Capacity: s.Capacity, Inserted: s.Inserted,
		Expired: s.Expired, Evicted: s.Evicted, Refused: s.Refused, Bytes: uint64(ct.Bytes())}
	if got := TableStatus(ct); got != want {
		t.Errorf("TableStatus = %+v, want %+v", got, want)
	}
	if want.Bytes == 0 || want.Capacity < 64 {
		t.Errorf("capacity %d, bytes %d: the table's size is missing", want.Capacity, want.Bytes)
	}
}
