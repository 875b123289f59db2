package simtest

import (
	"fmt"
	"reflect"
	"sort"
	"time"
)

// Diff compares a and b field by field and returns one line per
// difference, naming the path of the field ("Rows[3].Unbilled: 2 != 3").
// Times compare with Equal; maps by key.
func Diff(a, b any) []string {
	var out []string
	diff(&out, "", reflect.ValueOf(a), reflect.ValueOf(b))
	return out
}

var timeType = reflect.TypeOf(time.Time{})

func diff(out *[]string, path string, a, b reflect.Value) {
	if len(*out) > 50 {
		return
	}
	if !a.IsValid() || !b.IsValid() {
		if a.IsValid() != b.IsValid() {
			*out = append(*out, fmt.Sprintf("%s: %v != %v", path, a, b))
		}
		return
	}
	if a.Type() != b.Type() {
		*out = append(*out, fmt.Sprintf("%s: type %s != %s", path, a.Type(), b.Type()))
		return
	}
	if a.Type() == timeType {
		if ta, tb := a.Interface().(time.Time), b.Interface().(time.Time); !ta.Equal(tb) {
			*out = append(*out, fmt.Sprintf("%s: %v != %v", path, ta, tb))
		}
		return
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: %v != %v", path, show(a), show(b)))
			}
			return
		}
		diff(out, path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			diff(out, path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			*out = append(*out, fmt.Sprintf("%s: length %d != %d", path, a.Len(), b.Len()))
		}
		for i := range min(a.Len(), b.Len()) {
			diff(out, fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
		}
	case reflect.Map:
		keys := map[string]reflect.Value{}
		for _, k := range a.MapKeys() {
			keys[fmt.Sprint(k.Interface())] = k
		}
		for _, k := range b.MapKeys() {
			keys[fmt.Sprint(k.Interface())] = k
		}
		names := make([]string, 0, len(keys))
		for n := range keys {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			k := keys[n]
			diff(out, fmt.Sprintf("%s[%s]", path, n), a.MapIndex(k), b.MapIndex(k))
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface()))
		}
	}
}

func show(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	return fmt.Sprint(v.Elem().Interface())
}
