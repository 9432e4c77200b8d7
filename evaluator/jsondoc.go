package evaluator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// decodeDocument parses data as one JSON value into the generic Go form
// (map[string]any, []any, string, float64, bool, nil), refusing duplicate
// object keys (with encoding/json the last one silently wins, which would
// hide a copy-pasted flag) and nesting deeper than MaxJSONDepth. Errors carry
// the byte offset of the problem.
func decodeDocument(data []byte) (any, *DefinitionError) {
	dec := json.NewDecoder(bytes.NewReader(data))
	p := docParser{dec: dec, data: data}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	// Anything but whitespace after the value is an error.
	if _, terr := dec.Token(); terr != io.EOF {
		return nil, &DefinitionError{Problem: "invalid JSON: unexpected data after the top-level value", Offset: dec.InputOffset()}
	}
	return v, nil
}

type docParser struct {
	dec  *json.Decoder
	data []byte
}

func (p *docParser) fail(err error) *DefinitionError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &DefinitionError{Problem: "invalid JSON at offset " + fmt.Sprint(se.Offset) + ": " + se.Error(), Offset: se.Offset}
	}
	off := p.dec.InputOffset()
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &DefinitionError{Problem: "invalid JSON: unexpected end of input", Offset: off}
	}
	return &DefinitionError{Problem: "invalid JSON at offset " + fmt.Sprint(off) + ": " + err.Error(), Offset: off}
}

func (p *docParser) value(depth int) (any, *DefinitionError) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.fail(err)
	}
	return p.fromToken(tok, depth)
}

func (p *docParser) fromToken(tok json.Token, depth int) (any, *DefinitionError) {
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, float64, bool or nil
	}
	if depth >= MaxJSONDepth {
		off := p.dec.InputOffset()
		return nil, &DefinitionError{Problem: fmt.Sprintf("JSON nesting deeper than %d levels at offset %d", MaxJSONDepth, off), Offset: off}
	}
	switch d {
	case '{':
		obj := map[string]any{}
		for p.dec.More() {
			off := p.keyOffset()
			kt, err := p.dec.Token()
			if err != nil {
				return nil, p.fail(err)
			}
			key, _ := kt.(string) // the decoder guarantees object keys are strings
			if _, dup := obj[key]; dup {
				return nil, &DefinitionError{Problem: fmt.Sprintf("invalid JSON at offset %d: duplicate object key %s", off, quote(key)), Offset: off}
			}
			v, derr := p.value(depth + 1)
			if derr != nil {
				return nil, derr
			}
			obj[key] = v
		}
		if _, err := p.dec.Token(); err != nil { // '}'
			return nil, p.fail(err)
		}
		return obj, nil
	case '[':
		arr := []any{}
		for p.dec.More() {
			v, derr := p.value(depth + 1)
			if derr != nil {
				return nil, derr
			}
			arr = append(arr, v)
		}
		if _, err := p.dec.Token(); err != nil { // ']'
			return nil, p.fail(err)
		}
		return arr, nil
	}
	off := p.dec.InputOffset()
	return nil, &DefinitionError{Problem: fmt.Sprintf("invalid JSON at offset %d: unexpected %q", off, rune(d)), Offset: off}
}

// keyOffset is the offset of the next object key: the decoder's offset
// points before the separating comma and whitespace.
func (p *docParser) keyOffset() int64 {
	off := p.dec.InputOffset()
	for off < int64(len(p.data)) {
		switch p.data[off] {
		case ' ', '\t', '\n', '\r', ',':
			off++
			continue
		}
		break
	}
	return off
}

// marshalCanonical encodes v as compact JSON with sorted object keys and
// without HTML escaping (so "<=" stays readable in exported rules).
func marshalCanonical(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only reachable with values the decoder cannot produce (NaN, channels).
		panic("evaluator: cannot encode canonical JSON: " + err.Error())
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}
