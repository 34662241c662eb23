package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

var csvNodelistCols = []string{"node", "groups", "status", "statustime", "appstatus", "appstatustime",
	"primarysn", "hidden", "updatestatus", "updatestatustime", "zonename", "comments", "disable"}

func csvWrite(t testing.TB, cols []string, rows [][]string) string {
	t.Helper()
	var b bytes.Buffer
	w, err := NewCSVWriter(&b, cols)
	if err != nil {
		t.Fatalf("NewCSVWriter(%q): %v", cols, err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write(%q): %v", r, err)
		}
	}
	return b.String()
}

// csvReadAll reads every record.
func csvReadAll(in string) (header []string, rows [][]string, err error) {
	r, err := NewCSVReader(strings.NewReader(in))
	if err != nil {
		return nil, nil, err
	}
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return r.Header(), rows, nil
		}
		if err != nil {
			return r.Header(), rows, err
		}
		rows = append(rows, row)
	}
}

func TestCSVWriterTabdump(t *testing.T) {
	nodelistRow := make([]string, len(csvNodelistCols))
	nodelistRow[0], nodelistRow[1] = "node01", "compute,all"
	tests := []struct {
		name string
		cols []string
		rows [][]string
		want string
	}{
		{"site excerpt", []string{"key", "value", "comments", "disable"}, [][]string{
			{"xcatiport", "3002", "", ""},
			{"domain", "cluster.com", "", ""},
			{"dhcplease", "43200", "", ""},
		}, "#key,value,comments,disable\n\"xcatiport\",\"3002\",,\n\"domain\",\"cluster.com\",,\n\"dhcplease\",\"43200\",,\n"},
		{"chtab row", []string{"key", "value", "comments", "disable"}, [][]string{
			{"rsh_test", "/opt/xcat/bin/rcp", "the rcp command", "no"},
		}, "#key,value,comments,disable\n\"rsh_test\",\"/opt/xcat/bin/rcp\",\"the rcp command\",\"no\"\n"},
		{"nodelist, 11 empty fields", csvNodelistCols, [][]string{nodelistRow},
			"#node,groups,status,statustime,appstatus,appstatustime,primarysn,hidden,updatestatus,updatestatustime,zonename,comments,disable\n" +
				"\"node01\",\"compute,all\",,,,,,,,,,,\n"},
		{"regex value", []string{"node", "ip", "hostnames", "otherinterfaces", "comments", "disable"}, [][]string{
			{"compute", `|node(\d+)|10.0.0.($1+0)|`, "", "", "", ""},
		}, "#node,ip,hostnames,otherinterfaces,comments,disable\n\"compute\",\"|node(\\d+)|10.0.0.($1+0)|\",,,,\n"},
		{"quotes doubled", []string{"key", "value"}, [][]string{{"k", `say "hi"`}},
			"#key,value\n\"k\",\"say \"\"hi\"\"\"\n"},
		{"newline kept", []string{"key", "value"}, [][]string{{"k", "line1\nline2"}},
			"#key,value\n\"k\",\"line1\nline2\"\n"},
		{"all empty", []string{"a", "b", "c"}, [][]string{{"", "", ""}}, "#a,b,c\n,,\n"},
		{"no rows", []string{"a"}, nil, "#a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := csvWrite(t, tt.cols, tt.rows)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tabdump CSV mismatch (-want +got):\n%s", diff)
			}
			// The nodelist row really has 11 commas after the groups.
			if tt.name == "nodelist, 11 empty fields" && !strings.HasSuffix(got, `"compute,all"`+strings.Repeat(",", 11)+"\n") {
				t.Errorf("nodelist row does not end in 11 commas: %q", got)
			}
		})
	}
}

func TestCSVWriterErrors(t *testing.T) {
	for _, cols := range [][]string{nil, {""}, {"a,b"}, {`a"`}, {"a\nb"}, {"a "}, {"a\tb"}} {
		if _, err := NewCSVWriter(io.Discard, cols); err == nil {
			t.Errorf("NewCSVWriter(%q) succeeded, want an error", cols)
		}
	}
	w, err := NewCSVWriter(io.Discard, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{"x"}); err == nil {
		t.Error("Write of 1 field with 2 columns succeeded, want an error")
	}
	boom := errors.New("disk full")
	if _, err := NewCSVWriter(csvErrWriter{boom}, []string{"a"}); !errors.Is(err, boom) {
		t.Errorf("NewCSVWriter on a failing writer: %v, want %v", err, boom)
	}
}

type csvErrWriter struct{ err error }

func (w csvErrWriter) Write([]byte) (int, error) { return 0, w.err }

func TestCSVReader(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantHeader []string
		wantRows   [][]string
	}{
		{"site", "#key,value,comments,disable\n\"xcatiport\",\"3002\",,\n\"domain\",\"cluster.com\",,\n",
			[]string{"key", "value", "comments", "disable"},
			[][]string{{"xcatiport", "3002", "", ""}, {"domain", "cluster.com", "", ""}}},
		{"unquoted fields", "#a,b,c\nx,y z,\n", []string{"a", "b", "c"}, [][]string{{"x", "y z", ""}}},
		{"doubled quotes", "#key,value\n\"k\",\"say \"\"hi\"\"\"\n", []string{"key", "value"}, [][]string{{"k", `say "hi"`}}},
		{"empty quoted is unset", "#a,b\n\"\",\"x\"\n", []string{"a", "b"}, [][]string{{"", "x"}}},
		{"only a quote", "#a,b\n\"\"\"\",x\n", []string{"a", "b"}, [][]string{{`"`, "x"}}},
		{"multi-line value", "#key,value\n\"k\",\"line1\nline2\n\"\n\"k2\",\"v\"\n", []string{"key", "value"},
			[][]string{{"k", "line1\nline2\n"}, {"k2", "v"}}},
		{"comma and newline inside quotes", "#a,b\n\"x,\ny\",z\n", []string{"a", "b"}, [][]string{{"x,\ny", "z"}}},
		{"fewer fields", "#a,b,c\n\"x\"\n", []string{"a", "b", "c"}, [][]string{{"x", "", ""}}},
		{"one extra empty field", "#a,b\nx,y,\n", []string{"a", "b"}, [][]string{{"x", "y"}}},
		{"trailing white space ignored", "#a,b  \n\"x\",y \t\r\n\"z\",\"w\"  \n", []string{"a", "b"},
			[][]string{{"x", "y"}, {"z", "w"}}},
		{"CRLF", "#a,b\r\n\"x\",\"y\"\r\n", []string{"a", "b"}, [][]string{{"x", "y"}}},
		{"spaces inside quotes kept", "#a\n\"  x  \"\n", []string{"a"}, [][]string{{"  x  "}}},
		{"white space inside an unquoted field kept", "#a,b\n x ,y\n", []string{"a", "b"}, [][]string{{" x ", "y"}}},
		{"header quotes removed", "#\"key\",\"value\"\n\"k\",\"v\"\n", []string{"key", "value"}, [][]string{{"k", "v"}}},
		{"header trailing comma", "#a,b,\nx,y\n", []string{"a", "b"}, [][]string{{"x", "y"}}},
		{"blank line is an empty row", "#a,b\n\n\"x\",\n", []string{"a", "b"}, [][]string{{"", ""}, {"x", ""}}},
		{"comment after header is data", "#a,b\n#comment,x\n", []string{"a", "b"}, [][]string{{"#comment", "x"}}},
		{"no final newline", "#a\n\"x\"", []string{"a"}, [][]string{{"x"}}},
		{"header only", "#a,b\n", []string{"a", "b"}, nil},
		{"header without newline", "#a,b", []string{"a", "b"}, nil},
		{"columns in another order", "#value,key\n\"v\",\"k\"\n", []string{"value", "key"}, [][]string{{"v", "k"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, rows, err := csvReadAll(tt.in)
			if err != nil {
				t.Fatalf("reading %q: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.wantHeader, header); diff != "" {
				t.Errorf("header mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRows, rows); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCSVReaderErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantErr  error
		wantLine int
		wantText string
	}{
		{"no header", "\"key\",\"value\"\n", ErrCSVHeader, 1, "Data missing header line starting with # on line 1"},
		{"empty input", "", ErrCSVHeader, 1, "Data missing header line starting with # on line 1"},
		{"quote in unquoted field", "#a,b\nx,y\"z\n", ErrCSVMissingQuote, 2, `CSV missing opening " on line 2`},
		{"quote after text", "#a,b\n\"ok\",\"ok\"\nab\"c\",d\n", ErrCSVMissingQuote, 3, `CSV missing opening " on line 3`},
		{"text after closing quote", "#a,b\n\"x\"y,z\n", ErrCSVUnescapedQuote, 2, `CSV unescaped " on line 2`},
		{"space after closing quote", "#a,b\n\"x\" ,z\n", ErrCSVUnescapedQuote, 2, `CSV unescaped " on line 2`},
		{"unescaped on a continuation line", "#a,b\n\"x\ny\"z\",w\n", ErrCSVUnescapedQuote, 3, `CSV unescaped " on line 3`},
		{"too many fields", "#a,b\nx,y,z\n", ErrCSVTooManyFields, 2, "Too many fields on line 2"},
		{"too many empty fields", "#a,b\n\"x\",\"y\",,\n", ErrCSVTooManyFields, 2, "Too many fields on line 2"},
		{"too many after multi-line", "#a,b\n\"x\",\"1\n2\",3\n", ErrCSVTooManyFields, 3, "Too many fields on line 3"},
		{"unmatched quote", "#a,b\n\"x\",\"never closed\nstill open\n", ErrCSVUnmatchedQuote, 3, `CSV unmatched " on line 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := csvReadAll(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("reading %q: error %v, want %v", tt.in, err, tt.wantErr)
			}
			var ce *CSVError
			if !errors.As(err, &ce) {
				t.Fatalf("reading %q: error %T, want *CSVError", tt.in, err)
			}
			if ce.Line != tt.wantLine {
				t.Errorf("reading %q: error on line %d, want %d", tt.in, ce.Line, tt.wantLine)
			}
			if err.Error() != tt.wantText {
				t.Errorf("reading %q: error %q, want %q", tt.in, err.Error(), tt.wantText)
			}
		})
	}
}

func TestCSVReaderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r, err := NewCSVReader(io.MultiReader(strings.NewReader("#a\n\"x\"\n"), iotest.ErrReader(boom)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(); err != nil {
		t.Fatalf("first record: %v", err)
	}
	if _, err := r.Read(); !errors.Is(err, boom) {
		t.Errorf("Read after a failing reader: %v, want %v", err, boom)
	}
}

// csvEndless yields a header and then rows forever.
type csvEndless struct {
	buf bytes.Buffer
	n   int
}

func (e *csvEndless) Read(p []byte) (int, error) {
	for e.buf.Len() < len(p) {
		if e.n == 0 {
			e.buf.WriteString("#a,b\n")
		}
		fmt.Fprintf(&e.buf, "\"row%d\",\"v\"\n", e.n)
		e.n++
	}
	return e.buf.Read(p)
}

func TestCSVReaderStreams(t *testing.T) {
	// An endless input: reading must not try to buffer it whole.
	src := &csvEndless{}
	r, err := NewCSVReader(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		row, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{fmt.Sprintf("row%d", i), "v"}; !cmp.Equal(row, want) {
			t.Fatalf("record %d = %q, want %q", i, row, want)
		}
	}
	if src.n > 100000 {
		t.Errorf("reading 3 records generated %d rows of input", src.n)
	}
}

func TestCSVReaderLongLine(t *testing.T) {
	long := strings.Repeat("x", 200000)
	_, rows, err := csvReadAll("#a,b\n\"" + long + "\",y\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][0] != long || rows[0][1] != "y" {
		t.Errorf("a 200 kB field did not come back whole")
	}
}

func TestCSVRoundTrip(t *testing.T) {
	cols := []string{"key", "value", "comments", "disable"}
	rows := [][]string{
		{"a", "", "", ""},
		{"", "", "", ""},
		{"quotes", `"`, `""`, `a"b"c`},
		{"commas", ",", ",,", "a,b"},
		{"newlines", "\n", "a\n\nb", "trailing space \nnext"},
		{"blank lines", "\n\n\n", "x\n", "\r\n"},
		{"white space", " ", "\t", "  x  "},
		{"binary", "\x00\xff", "é", "|node(\\d+)|10.0.0.($1+0)|"},
		{"looks like a header", "#key", "#", "\"#\""},
	}
	in := csvWrite(t, cols, rows)
	header, got, err := csvReadAll(in)
	if err != nil {
		t.Fatalf("reading back %q: %v", in, err)
	}
	if diff := cmp.Diff(cols, header); diff != "" {
		t.Errorf("header mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rows, got); diff != "" {
		t.Errorf("rows mismatch (-want +got):\n%s", diff)
	}
}

func ExampleNewCSVWriter() {
	w, err := NewCSVWriter(os.Stdout, []string{"key", "value", "comments", "disable"})
	if err != nil {
		fmt.Println(err)
		return
	}
	w.Write([]string{"domain", "cluster.com", "", ""})
	w.Write([]string{"motd", `say "hi"`, "", "no"})
	// Output:
	// #key,value,comments,disable
	// "domain","cluster.com",,
	// "motd","say ""hi""",,"no"
}

func ExampleNewCSVReader() {
	in := "#key,value,comments,disable\n\"domain\",\"cluster.com\",,\n\"motd\",\"two\nlines\"\n"
	r, err := NewCSVReader(strings.NewReader(in))
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%q\n", row)
	}
	// Output:
	// ["domain" "cluster.com" "" ""]
	// ["motd" "two\nlines" "" ""]
}

func BenchmarkCSV(b *testing.B) {
	rows := make([][]string, 10000)
	for i := range rows {
		rows[i] = make([]string, len(csvNodelistCols))
		rows[i][0] = fmt.Sprintf("node%05d", i)
		rows[i][1] = "compute,all,rack" + fmt.Sprint(i/40)
		rows[i][11] = `a "quoted" comment`
	}
	var data bytes.Buffer
	bw := bufio.NewWriter(&data)
	w, _ := NewCSVWriter(bw, csvNodelistCols)
	for _, r := range rows {
		w.Write(r)
	}
	bw.Flush()
	b.Run("write-10000", func(b *testing.B) {
		b.SetBytes(int64(data.Len()))
		for b.Loop() {
			bw := bufio.NewWriter(io.Discard)
			w, _ := NewCSVWriter(bw, csvNodelistCols)
			for _, r := range rows {
				if err := w.Write(r); err != nil {
					b.Fatal(err)
				}
			}
			bw.Flush()
		}
	})
	b.Run("read-10000", func(b *testing.B) {
		b.SetBytes(int64(data.Len()))
		for b.Loop() {
			r, err := NewCSVReader(bytes.NewReader(data.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				_, err := r.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != len(rows) {
				b.Fatalf("read %d rows", n)
			}
		}
	})
}

// FuzzCSV checks the round trip (rows written then read come back the same) and that any
// input parses without panicking, a parsed input writing back to a stable form.
func FuzzCSV(f *testing.F) {
	f.Add("#key,value,comments,disable\n\"xcatiport\",\"3002\",,\n", 4)
	f.Add("#a,b\n\"x\ny\",\"say \"\"hi\"\"\"\n", 2)
	f.Add("#a\n\n\n", 1)
	f.Add("#a,b\nx,y,\n\"\"\"\",\n", 2)
	f.Add("key\x1fvalue\x1e\"\x1f\n\x1e\x1f", 3)
	f.Fuzz(func(t *testing.T, data string, ncols int) {
		// Round trip: data cut into rows (\x1e) and fields (\x1f).
		if ncols < 1 || ncols > 20 {
			ncols = 1 + (ncols&0x7fffffff)%20
		}
		cols := make([]string, ncols)
		for i := range cols {
			cols[i] = fmt.Sprintf("c%d", i)
		}
		var rows [][]string
		for rec := range strings.SplitSeq(data, "\x1e") {
			row := make([]string, ncols)
			for i, v := range strings.SplitN(rec, "\x1f", ncols) {
				row[i] = v
			}
			rows = append(rows, row)
		}
		out := csvWrite(t, cols, rows)
		header, got, err := csvReadAll(out)
		if err != nil {
			t.Fatalf("reading back %q: %v", out, err)
		}
		if !cmp.Equal(cols, header) || !cmp.Equal(rows, got) {
			t.Fatalf("round trip of %q:\n%s", out, cmp.Diff(rows, got))
		}

		// Arbitrary input: parse, write, parse again, write again: the same bytes.
		header, parsed, err := csvReadAll(data)
		if err != nil || len(header) == 0 {
			return
		}
		if _, err := NewCSVWriter(io.Discard, header); err != nil {
			return // a header we would not write, such as "# a b"
		}
		first := csvWrite(t, header, parsed)
		_, reparsed, err := csvReadAll(first)
		if err != nil {
			t.Fatalf("reading our own output %q: %v", first, err)
		}
		if second := csvWrite(t, header, reparsed); second != first {
			t.Fatalf("not stable: %q then %q", first, second)
		}
	})
}
