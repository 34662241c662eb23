package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The errors of reading CSV, each wrapped in a *CSVError with the line number.
var (
	//lint:ignore ST1005 the exact text of xCAT's tabrestore
	ErrCSVHeader         = errors.New("Data missing header line starting with #")
	ErrCSVMissingQuote   = errors.New(`CSV missing opening "`)
	ErrCSVUnescapedQuote = errors.New(`CSV unescaped "`)
	ErrCSVUnmatchedQuote = errors.New(`CSV unmatched "`)
	//lint:ignore ST1005 the exact text of xCAT's tabrestore
	ErrCSVTooManyFields = errors.New("Too many fields")
	ErrCSVRecordTooLong = errors.New("CSV record too long")
)

// csvMaxRecord bounds the memory one record may take.
const csvMaxRecord = 64 << 20

// CSVError is a CSV parse error at a line of the input.
type CSVError struct {
	Line int // 1-based line of the file; the header is line 1
	Err  error
}

func (e *CSVError) Error() string { return fmt.Sprintf("%v on line %d", e.Err, e.Line) }

func (e *CSVError) Unwrap() error { return e.Err }

// CSVWriter writes tabdump CSV, as xCAT's tabutils.pm does. Each Write makes one Write call
// on the underlying writer; wrap it in a bufio.Writer when writing many rows.
//
// The header is "#" and the column names joined by ",". Each row is one line: a non-empty
// value is written between double quotes with every " doubled, an empty (unset) value is
// written as nothing, and the fields are joined by ",". Values may hold commas, quotes and
// newlines; a newline makes the record span lines.
type CSVWriter struct {
	w     io.Writer
	ncols int
	buf   []byte
}

// NewCSVWriter writes the header line for columns and returns a writer for the rows.
// Column names must be non-empty and may not contain ",", quotes or white space.
func NewCSVWriter(w io.Writer, columns []string) (*CSVWriter, error) {
	if len(columns) == 0 {
		return nil, errors.New("csv: no columns")
	}
	for _, c := range columns {
		if c == "" || strings.ContainsAny(c, ",\"") || strings.IndexFunc(c, rxIsSpace) >= 0 {
			return nil, fmt.Errorf("csv: column name %q cannot be written in a header", c)
		}
	}
	cw := &CSVWriter{w: w, ncols: len(columns)}
	cw.buf = append(cw.buf[:0], '#')
	cw.buf = append(cw.buf, strings.Join(columns, ",")...)
	cw.buf = append(cw.buf, '\n')
	if _, err := w.Write(cw.buf); err != nil {
		return nil, fmt.Errorf("csv: header: %w", err)
	}
	return cw, nil
}

// Write writes one row, its values in the header's column order; "" is unset.
func (w *CSVWriter) Write(row []string) error {
	if len(row) != w.ncols {
		return fmt.Errorf("csv: row has %d fields, header has %d", len(row), w.ncols)
	}
	b := w.buf[:0]
	for i, v := range row {
		if i > 0 {
			b = append(b, ',')
		}
		if v == "" {
			continue
		}
		b = append(b, '"')
		for {
			j := strings.IndexByte(v, '"')
			if j < 0 {
				b = append(b, v...)
				break
			}
			b = append(b, v[:j+1]...)
			b = append(b, '"')
			v = v[j+1:]
		}
		b = append(b, '"')
	}
	b = append(b, '\n')
	w.buf = b
	_, err := w.w.Write(b)
	return err
}

// CSVReader reads tabrestore CSV, one record at a time, as xCAT's tabutils.pm does.
//
// Reading follows tabrestore: the first line must start with "#"; quotes are removed from
// it, then the "#" and trailing white space, and it is split on ","; a field is empty (at a
// "," or the end of the line), unquoted (up to the next ",", without any ") or quoted (up
// to a " followed by "," or the end of the line, "" standing for "); a quoted value
// continues on the next line when its closing quote is not on this one; trailing white
// space of a line is ignored; a line may have fewer fields than the header (the rest are
// empty) and one extra empty field, but not more.
//
// One difference from xCAT, so that writing and reading give back the same values: inside
// a quoted value that spans lines, xCAT strips the trailing white space of every line
// (losing spaces before a line break and blank lines within the value); here the value's
// text is kept exactly. Line numbers in errors count the lines of the file from 1, the
// header being line 1 (xCAT counts data lines from 0).
type CSVReader struct {
	r      *bufio.Reader
	header []string
	line   int // lines read so far
	eof    bool
}

// NewCSVReader reads the header line.
func NewCSVReader(r io.Reader) (*CSVReader, error) {
	cr := &CSVReader{r: bufio.NewReaderSize(r, 64<<10)}
	line, err := cr.readLine()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if !strings.HasPrefix(line, "#") {
		return nil, &CSVError{Line: 1, Err: ErrCSVHeader}
	}
	h := strings.ReplaceAll(line, `"`, "")
	h = strings.TrimPrefix(h, "#")
	h = strings.TrimRightFunc(h, rxIsSpace)
	cr.header = rxPerlSplit(h, ',')
	if len(cr.header) == 0 {
		return nil, &CSVError{Line: 1, Err: errors.New("header line names no columns")}
	}
	return cr, nil
}

// Header returns the column names of the header line.
func (r *CSVReader) Header() []string { return r.header }

// readLine returns the next line without its "\n", and io.EOF after the last one.
func (r *CSVReader) readLine() (string, error) {
	if r.eof {
		return "", io.EOF
	}
	chunk, err := r.r.ReadSlice('\n')
	var long []byte // a line longer than the buffer
	for errors.Is(err, bufio.ErrBufferFull) {
		long = append(long, chunk...)
		if len(long) > csvMaxRecord {
			return "", &CSVError{Line: r.line + 1, Err: ErrCSVRecordTooLong}
		}
		chunk, err = r.r.ReadSlice('\n')
	}
	if long != nil {
		chunk = append(long, chunk...)
	}
	if err != nil {
		if !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("csv: line %d: %w", r.line+1, err)
		}
		r.eof = true
		if len(chunk) == 0 {
			return "", io.EOF
		}
		r.line++
		return string(chunk), nil
	}
	r.line++
	return string(chunk[:len(chunk)-1]), nil
}

// Read returns the next record, its fields aligned to Header(): missing trailing fields are
// "". It returns io.EOF after the last record, and a *CSVError for a malformed one.
func (r *CSVReader) Read() ([]string, error) {
	text, err := r.readLine()
	if err != nil {
		return nil, err
	}
	row := make([]string, len(r.header))
	end := csvTrimmedLen(text)
	pos := 0
	for col := range row {
		switch {
		case pos >= end:
			// The line ended: this and the remaining fields are empty.
		case text[pos] == ',':
			pos++
		case text[pos] != '"':
			field := text[pos:end]
			if j := strings.IndexByte(field, ','); j >= 0 {
				field = field[:j]
			}
			if strings.IndexByte(field, '"') >= 0 {
				return nil, &CSVError{Line: r.line, Err: ErrCSVMissingQuote}
			}
			row[col] = field
			pos += len(field)
			if pos < end {
				pos++ // the comma
			}
		default:
			pos++
			// Most values end on their line without a doubled quote: a substring.
			if j := strings.IndexByte(text[pos:], '"'); j >= 0 {
				k := pos + j + 1
				if k >= end || text[k] == ',' {
					row[col] = text[pos : pos+j]
					pos = min(k+1, end)
					continue
				}
			}
			var val []byte
			for {
				j := strings.IndexByte(text[pos:], '"')
				if j < 0 {
					// The value goes on on the next line.
					val = append(val, text[pos:]...)
					val = append(val, '\n')
					if len(val) > csvMaxRecord {
						return nil, &CSVError{Line: r.line, Err: ErrCSVRecordTooLong}
					}
					next, err := r.readLine()
					if errors.Is(err, io.EOF) {
						return nil, &CSVError{Line: r.line, Err: ErrCSVUnmatchedQuote}
					}
					if err != nil {
						return nil, err
					}
					text, pos = next, 0
					end = csvTrimmedLen(text)
					continue
				}
				val = append(val, text[pos:pos+j]...)
				pos += j + 1
				if pos < len(text) && text[pos] == '"' {
					val = append(val, '"')
					pos++
					continue
				}
				if pos >= end {
					break
				}
				if text[pos] != ',' {
					return nil, &CSVError{Line: r.line, Err: ErrCSVUnescapedQuote}
				}
				pos++
				break
			}
			row[col] = string(val)
		}
	}
	if pos < end {
		return nil, &CSVError{Line: r.line, Err: ErrCSVTooManyFields}
	}
	return row, nil
}

// csvTrimmedLen is the length of line without trailing white space (Perl's \s).
func csvTrimmedLen(line string) int {
	n := len(line)
	for n > 0 && rxIsSpace(rune(line[n-1])) {
		n--
	}
	return n
}
