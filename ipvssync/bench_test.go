package ipvssync

import "testing"

// BenchmarkAppend is the sender's cost per entry: appending an IPv4
// connection to a message, a fresh message each time one fills.
func BenchmarkAppend(b *testing.B) {
	e, _ := NewEncoder(make([]byte, 0, 1500), 1472, 1)
	b.ReportAllocs()
	for b.Loop() {
		if e.Append(&connV4) != nil {
			e.Reset()
			e.Append(&connV4)
		}
	}
}

// BenchmarkDecode is the receiver's cost per entry: a full 1472-byte
// message of IPv4 entries, checked and walked.
func BenchmarkDecode(b *testing.B) {
	e, _ := NewEncoder(make([]byte, 0, 1500), 1472, 1)
	for e.Append(&connV4) == nil {
	}
	msg := e.Bytes()
	var d Decoder
	n := 0
	visit := func(*Conn) { n++ }
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(msg, visit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
}
