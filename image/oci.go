package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// OCI takes the root filesystem from a container image: an OCI image layout directory
// (skopeo copy ... oci:DIR, buildah push ... oci:DIR) or a `docker save` tarball. The
// layers are flattened (whiteouts and opaque directories applied) and unpacked with
// their owners, modes and xattrs.
type OCI struct {
	// Path is the layout directory (it holds an oci-layout file) or the tarball.
	Path string
	// Ref picks one image when there are several: for a layout, the
	// org.opencontainers.image.ref.name annotation ("bookworm" or a full reference) or
	// a digest ("sha256:..."); for a tarball, the tag ("debian:bookworm"). If empty,
	// the only image.
	Ref string
	// Platform picks from a multi-platform index: "linux/amd64". If empty, linux and
	// this machine's architecture.
	Platform string
}

func (o OCI) String() string {
	if o.Ref != "" {
		return "oci " + o.Path + " " + o.Ref
	}
	return "oci " + o.Path
}

func (o OCI) populate(ctx context.Context, b *builder, dir string) error {
	img, err := o.image()
	if err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if _, err := Unpack(ctx, rc, dir, UnpackOptions{Format: Tar, Logger: b.log}); err != nil {
		return fmt.Errorf("image: %s: %w", o, err)
	}
	return nil
}

func (o OCI) platform() (v1.Platform, error) {
	p := o.Platform
	if p == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	pl, err := v1.ParsePlatform(p)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("image: oci platform %q: %w", p, err)
	}
	return *pl, nil
}

// image opens the image o names.
func (o OCI) image() (v1.Image, error) {
	fi, err := os.Stat(o.Path)
	if err != nil {
		return nil, fmt.Errorf("image: oci: %w", err)
	}
	if !fi.IsDir() {
		var tag *name.Tag
		if o.Ref != "" {
			t, err := name.NewTag(o.Ref)
			if err != nil {
				return nil, fmt.Errorf("image: oci tarball %s: ref %q: %w", o.Path, o.Ref, err)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(o.Path, tag)
		if err != nil {
			return nil, fmt.Errorf("image: oci tarball %s: %w", o.Path, err)
		}
		return img, nil
	}
	if _, err := os.Stat(filepath.Join(o.Path, "oci-layout")); err != nil {
		return nil, fmt.Errorf("image: %s is not an OCI image layout (no oci-layout file)", o.Path)
	}
	idx, err := layout.ImageIndexFromPath(o.Path)
	if err != nil {
		return nil, fmt.Errorf("image: oci layout %s: %w", o.Path, err)
	}
	want, err := o.platform()
	if err != nil {
		return nil, err
	}
	img, err := o.pick(idx, want, true)
	if err != nil {
		return nil, fmt.Errorf("image: oci layout %s: %w", o.Path, err)
	}
	return img, nil
}

var errNoImage = errors.New("no matching image")

// pick finds the image in idx: by Ref at the top level, then by platform in nested
// indexes.
func (o OCI) pick(idx v1.ImageIndex, want v1.Platform, top bool) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var cands []v1.Descriptor
	for _, d := range im.Manifests {
		if top && o.Ref != "" {
			ref := d.Annotations["org.opencontainers.image.ref.name"]
			if ref != o.Ref && d.Digest.String() != o.Ref && !strings.HasSuffix(ref, ":"+o.Ref) {
				continue
			}
		}
		cands = append(cands, d)
	}
	if len(cands) == 0 {
		if o.Ref != "" && top {
			return nil, fmt.Errorf("ref %q: %w", o.Ref, errNoImage)
		}
		return nil, fmt.Errorf("empty index: %w", errNoImage)
	}
	// Several candidates: keep those for the platform.
	if len(cands) > 1 {
		var on []v1.Descriptor
		for _, d := range cands {
			if d.Platform == nil || d.Platform.Satisfies(want) {
				on = append(on, d)
			}
		}
		if len(on) == 0 {
			return nil, fmt.Errorf("platform %s: %w", want.String(), errNoImage)
		}
		if len(on) > 1 && top && o.Ref == "" {
			return nil, fmt.Errorf("%d images: set Ref: %w", len(on), errNoImage)
		}
		cands = on
	}
	d := cands[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return o.pick(child, want, false)
	}
	if d.Platform != nil && !d.Platform.Satisfies(want) && d.Platform.OS != "" {
		return nil, fmt.Errorf("image is for %s, want %s: %w", d.Platform.String(), want.String(), errNoImage)
	}
	return idx.Image(d.Digest)
}
