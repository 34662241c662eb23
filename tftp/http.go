package tftp

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// HTTPHandler serves the same files over HTTP: GET and HEAD, Range requests,
// If-Modified-Since and the other conditional requests of http.ServeContent. The request
// path is cleaned like a TFTP name (mount it under a prefix with http.StripPrefix). Files
// stream from their File; a *os.File goes to net/http unwrapped, so whole files and single
// ranges leave with sendfile(2). The zero HTTPHandler answers 404 to everything.
type HTTPHandler struct {
	// Files resolves requested paths. If nil, every request gets 404.
	Files Files
	// OnTransfer, if set, is called once per request when it ends.
	OnTransfer func(Transfer)
	// Logger receives one debug record per request. If nil, nothing is logged.
	Logger *slog.Logger
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := Transfer{Proto: "http", Name: r.URL.Path, Size: -1, Start: time.Now()}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		t.Client = unmapAP(ap)
	}
	defer func() {
		t.Duration = time.Since(t.Start)
		if h.Logger != nil {
			h.Logger.Debug("tftp: http transfer", "client", t.Client, "path", t.Name, "bytes", t.Bytes, "duration", t.Duration, "err", t.Err)
		}
		if h.OnTransfer != nil {
			h.OnTransfer(t)
		}
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		t.Err = errors.New("tftp: http method " + r.Method + " not allowed")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, err := CleanName(r.URL.Path)
	if err != nil {
		t.Err = err
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	t.Name = name
	if h.Files == nil {
		t.Err = &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		http.NotFound(w, r)
		return
	}
	f, err := h.Files.Open(r.Context(), t.Client.Addr(), name)
	if err != nil {
		t.Err = err
		switch {
		case errors.Is(err, fs.ErrNotExist):
			http.NotFound(w, r)
		case errors.Is(err, fs.ErrPermission), errors.Is(err, ErrBadName):
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			http.Error(w, "cannot open file", http.StatusInternalServerError)
		}
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Err = err
		http.Error(w, "cannot open file", http.StatusInternalServerError)
		return
	}
	t.Size = fi.Size()
	cw := &countingWriter{ResponseWriter: w}
	// A *os.File reaches ServeContent as is: its copy then takes the sendfile path of
	// net/http (ReadFrom on the connection), through countingWriter.ReadFrom.
	http.ServeContent(cw, r, name, fi.ModTime(), f)
	t.Bytes = cw.n
	if err := r.Context().Err(); err != nil {
		t.Err = err
	}
}

// countingWriter counts the body bytes written, keeping the ResponseWriter's ReadFrom
// (sendfile) path.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
	}
	c.n += n
	return n, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
