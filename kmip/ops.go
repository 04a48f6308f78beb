package kmip

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"

	"github.com/keymesh/keymesh/vault/secret"
)

// Operations lists what the server supports, in the order Query reports
// them. Every other operation gets Operation Not Supported.
var Operations = []kmip.Operation{
	kmip.OperationDiscoverVersions, kmip.OperationQuery,
	kmip.OperationCreate, kmip.OperationRegister,
	kmip.OperationLocate, kmip.OperationCheck, kmip.OperationGet,
	kmip.OperationGetAttributes, kmip.OperationGetAttributeList,
	kmip.OperationAddAttribute, kmip.OperationModifyAttribute, kmip.OperationDeleteAttribute,
	kmip.OperationActivate, kmip.OperationRevoke, kmip.OperationDestroy,
	kmip.OperationEncrypt, kmip.OperationDecrypt,
}

// Profiles are the KMIP profiles the server claims (KMIP Profiles 1.2–1.4:
// Baseline Server over TLS 1.2).
var Profiles = []kmip.ProfileName{
	kmip.ProfileNameBaselineServerTLSV1_2KMIPV1_2,
	kmip.ProfileNameBaselineServerTLSV1_2KMIPV1_3,
	kmip.ProfileNameBaselineServerTLSV1_2KMIPV1_4,
}

// settable are the attributes a client may set, change and delete; the
// others are the server's (or fixed at creation, as the usage mask).
var settable = map[kmip.AttributeName]bool{
	kmip.AttributeNameName:                           true,
	kmip.AttributeNameObjectGroup:                    true,
	kmip.AttributeNameContactInformation:             true,
	kmip.AttributeNameApplicationSpecificInformation: true,
	kmip.AttributeNameDescription:                    true,
	kmip.AttributeNameComment:                        true,
	//lint:ignore SA1019 KMIP 1.0–1.2 clients (PyKMIP) send it
	kmip.AttributeNameOperationPolicyName: true,
}

func isSettable(n kmip.AttributeName) bool { return settable[n] || n.IsCustom() }

// multi are the settable attributes that may have several instances.
var multi = map[kmip.AttributeName]bool{
	kmip.AttributeNameName:                           true,
	kmip.AttributeNameObjectGroup:                    true,
	kmip.AttributeNameApplicationSpecificInformation: true,
}

func allowsMany(n kmip.AttributeName) bool { return multi[n] || n.IsCustom() }

func newExecutor(s *Server) *kmipserver.BatchExecutor {
	e := kmipserver.NewBatchExecutor()
	e.Route(kmip.OperationQuery, route(s, s.query))
	e.Route(kmip.OperationCreate, route(s, s.create))
	e.Route(kmip.OperationRegister, route(s, s.register))
	e.Route(kmip.OperationLocate, route(s, s.locate))
	e.Route(kmip.OperationCheck, route(s, s.check))
	e.Route(kmip.OperationGet, route(s, s.get))
	e.Route(kmip.OperationGetAttributes, route(s, s.getAttributes))
	e.Route(kmip.OperationGetAttributeList, route(s, s.getAttributeList))
	e.Route(kmip.OperationAddAttribute, route(s, s.addAttribute))
	e.Route(kmip.OperationModifyAttribute, route(s, s.modifyAttribute))
	e.Route(kmip.OperationDeleteAttribute, route(s, s.deleteAttribute))
	e.Route(kmip.OperationActivate, route(s, s.activate))
	e.Route(kmip.OperationRevoke, route(s, s.revoke))
	e.Route(kmip.OperationDestroy, route(s, s.destroy))
	e.Route(kmip.OperationEncrypt, route(s, s.encrypt))
	e.Route(kmip.OperationDecrypt, route(s, s.decrypt))
	return e
}

// route wraps a handler: a panic in it is counted, logged with its stack
// and answered General Failure, never with its message.
func route[Req, Resp kmip.OperationPayload](s *Server, h func(context.Context, Req) (Resp, error)) kmipserver.OperationHandler {
	return kmipserver.HandleFunc(func(ctx context.Context, req Req) (resp Resp, err error) {
		defer func() {
			if r := recover(); r != nil {
				s.panics.Add(1)
				s.log.Error("kmip operation panicked", "party", callerOf(ctx).Party, "operation", ttlv.EnumStr(req.Operation()),
					"panic", cut(fmt.Sprint(r)), "stack", string(debug.Stack()))
				var zero Resp
				resp, err = zero, kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "internal error")
			}
		}()
		return h(ctx, req)
	})
}

// kerr maps a backend error onto a KMIP result. The messages are the
// sentinels' own (and for ErrInvalid the backend's, which quotes only
// public input): nothing internal reaches the client.
func kerr(err error) error {
	var ke kmipserver.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		return ke
	case errors.Is(err, ErrNotFound):
		return kmipserver.Errorf(kmip.ResultReasonItemNotFound, "object not found")
	case errors.Is(err, ErrDenied):
		return kmipserver.Errorf(kmip.ResultReasonPermissionDenied, "%s", err.Error())
	case errors.Is(err, ErrWrongState):
		return kmipserver.Errorf(kmip.ResultReasonIllegalOperation, "%s", err.Error())
	case errors.Is(err, ErrInvalid):
		return kmipserver.Errorf(kmip.ResultReasonInvalidField, "%s", err.Error())
	case errors.Is(err, ErrDecrypt):
		return kmipserver.Errorf(kmip.ResultReasonCryptographicFailure, "decryption failed")
	case errors.Is(err, ErrUnavailable):
		return kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "%s", err.Error())
	}
	return kmipserver.Errorf(kmip.ResultReasonGeneralFailure, "internal error")
}

func invalid(format string, args ...any) error {
	return kmipserver.Errorf(kmip.ResultReasonInvalidField, format, args...)
}

func (s *Server) id(ctx context.Context, uid string) (string, error) {
	id, err := kmipserver.GetIdOrPlaceholder(ctx, uid)
	if err != nil {
		return "", kmipserver.Errorf(kmip.ResultReasonMissingData, "no unique identifier and no ID placeholder")
	}
	return id, nil
}

func (s *Server) query(ctx context.Context, req *payloads.QueryRequestPayload) (*payloads.QueryResponsePayload, error) {
	resp := &payloads.QueryResponsePayload{}
	for _, f := range req.QueryFunction {
		switch f {
		case kmip.QueryFunctionOperations:
			resp.Operations = slices.Clone(Operations)
		case kmip.QueryFunctionObjects:
			resp.ObjectType = []kmip.ObjectType{kmip.ObjectTypeSymmetricKey}
		case kmip.QueryFunctionServerInformation:
			resp.VendorIdentification = "keymesh"
		case kmip.QueryFunctionProfiles:
			for _, p := range Profiles {
				resp.ProfileInformation = append(resp.ProfileInformation, kmip.ProfileInformation{ProfileName: p})
			}
		}
	}
	return resp, nil
}

// spec is what a Create or Register template says.
type spec struct {
	attrs      []Attr
	exportable bool
}

// templateSpec checks a template: AES (the only algorithm), 256 bits (the
// only length), a usage mask (default Encrypt|Decrypt; Export, or KMIP
// 1.4's Extractable, makes the key exportable, fixed for its life), and
// settable attributes. Anything else is refused by name.
func templateSpec(tpl kmip.TemplateAttribute) (spec, error) {
	var sp spec
	mask := kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt
	var list []kmip.Attribute
	//lint:ignore SA1019 KMIP 1.0–1.2 templates carry names here
	for _, n := range tpl.Name {
		list = append(list, kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: n})
	}
	list = append(list, tpl.Attribute...)
	var stored []kmip.Attribute
	for _, a := range list {
		switch a.AttributeName {
		case kmip.AttributeNameCryptographicAlgorithm:
			if v, ok := a.AttributeValue.(kmip.CryptographicAlgorithm); !ok || v != kmip.CryptographicAlgorithmAES {
				return spec{}, invalid("only AES keys are supported")
			}
		case kmip.AttributeNameCryptographicLength:
			if v, ok := a.AttributeValue.(int32); !ok || v != 256 {
				return spec{}, invalid("only 256-bit keys are supported")
			}
		case kmip.AttributeNameCryptographicUsageMask:
			v, ok := a.AttributeValue.(kmip.CryptographicUsageMask)
			if !ok {
				return spec{}, invalid("Cryptographic Usage Mask: wrong type")
			}
			mask = v
		case kmip.AttributeNameExtractable:
			v, ok := a.AttributeValue.(bool)
			if !ok {
				return spec{}, invalid("Extractable: wrong type")
			}
			sp.exportable = sp.exportable || v
		case kmip.AttributeNameObjectType:
			if v, ok := a.AttributeValue.(kmip.ObjectType); !ok || v != kmip.ObjectTypeSymmetricKey {
				return spec{}, invalid("only symmetric keys are supported")
			}
		default:
			if !isSettable(a.AttributeName) {
				return spec{}, invalid("attribute %q cannot be set by a client", cut(string(a.AttributeName)))
			}
			stored = append(stored, a)
		}
	}
	if mask&kmip.CryptographicUsageExport != 0 {
		sp.exportable = true
	}
	stored = append(stored, kmip.Attribute{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: mask})
	attrs, err := encodeAttrs(stored)
	if err != nil {
		return spec{}, err
	}
	sp.attrs = attrs
	return sp, nil
}

func (s *Server) create(ctx context.Context, req *payloads.CreateRequestPayload) (*payloads.CreateResponsePayload, error) {
	if req.ObjectType != kmip.ObjectTypeSymmetricKey {
		return nil, invalid("only symmetric keys can be created")
	}
	sp, err := templateSpec(req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	obj, err := s.cfg.Backend.Create(ctx, callerOf(ctx), CreateRequest{Attrs: sp.attrs, Exportable: sp.exportable})
	if err != nil {
		return nil, kerr(err)
	}
	kmipserver.SetIdPlaceholder(ctx, obj.ID)
	return &payloads.CreateResponsePayload{ObjectType: kmip.ObjectTypeSymmetricKey, UniqueIdentifier: obj.ID}, nil
}

func (s *Server) register(ctx context.Context, req *payloads.RegisterRequestPayload) (*payloads.RegisterResponsePayload, error) {
	key, ok := req.Object.(*kmip.SymmetricKey)
	if req.ObjectType != kmip.ObjectTypeSymmetricKey || !ok {
		return nil, invalid("only symmetric keys can be registered")
	}
	kb := key.KeyBlock
	if kb.KeyWrappingData != nil {
		return nil, kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "wrapped key registration is not supported")
	}
	if kb.CryptographicAlgorithm != 0 && kb.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES {
		return nil, invalid("only AES keys are supported")
	}
	material, err := key.KeyMaterial()
	if err != nil {
		return nil, invalid("key material: %s", cut(err.Error()))
	}
	defer clear(material)
	if len(material) != 32 {
		return nil, invalid("only 256-bit keys are supported")
	}
	sp, err := templateSpec(req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	m := secret.New(material)
	defer m.Clear()
	obj, err := s.cfg.Backend.Create(ctx, callerOf(ctx), CreateRequest{Attrs: sp.attrs, Exportable: sp.exportable, Material: m})
	if err != nil {
		return nil, kerr(err)
	}
	kmipserver.SetIdPlaceholder(ctx, obj.ID)
	return &payloads.RegisterResponsePayload{UniqueIdentifier: obj.ID}, nil
}

func (s *Server) get(ctx context.Context, req *payloads.GetRequestPayload) (*payloads.GetResponsePayload, error) {
	id, err := s.id(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	switch req.KeyFormatType {
	case 0, kmip.KeyFormatTypeRaw, kmip.KeyFormatTypeTransparentSymmetricKey:
	default:
		return nil, kmipserver.Errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "key format type not supported (want Raw or Transparent Symmetric Key)")
	}
	if req.KeyWrappingSpecification != nil {
		return nil, kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "key wrapping is not supported")
	}
	if req.KeyCompressionType != 0 {
		return nil, kmipserver.Errorf(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	_, m, err := s.cfg.Backend.Export(ctx, callerOf(ctx), id)
	if err != nil {
		return nil, kerr(err)
	}
	b, err := m.Copy()
	m.Clear()
	if err != nil {
		return nil, kerr(err)
	}
	// Handle clears b once the response is encoded (scrub).
	var material kmip.KeyMaterial
	format := kmip.KeyFormatTypeRaw
	if req.KeyFormatType == kmip.KeyFormatTypeTransparentSymmetricKey {
		format = req.KeyFormatType
		material.TransparentSymmetricKey = &kmip.TransparentSymmetricKey{Key: b}
	} else {
		material.Bytes = &b
	}
	return &payloads.GetResponsePayload{
		ObjectType: kmip.ObjectTypeSymmetricKey, UniqueIdentifier: id,
		Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
			KeyFormatType:          format,
			KeyValue:               &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: material}},
			CryptographicAlgorithm: kmip.CryptographicAlgorithmAES,
			CryptographicLength:    256,
		}},
	}, nil
}

// scrub clears the key material of Get responses once encoded.
func scrub(resp *kmip.ResponseMessage) {
	if resp == nil {
		return
	}
	for _, bi := range resp.BatchItem {
		g, ok := bi.ResponsePayload.(*payloads.GetResponsePayload)
		if !ok {
			continue
		}
		k, ok := g.Object.(*kmip.SymmetricKey)
		if !ok || k.KeyBlock.KeyValue == nil || k.KeyBlock.KeyValue.Plain == nil {
			continue
		}
		km := k.KeyBlock.KeyValue.Plain.KeyMaterial
		if km.Bytes != nil {
			clear(*km.Bytes)
		}
		if km.TransparentSymmetricKey != nil {
			clear(km.TransparentSymmetricKey.Key)
		}
	}
}

// attributes returns every attribute of obj: the server's, then the stored ones.
func attributes(obj Object) ([]kmip.Attribute, error) {
	at := func(n kmip.AttributeName, v any) kmip.Attribute {
		return kmip.Attribute{AttributeName: n, AttributeValue: v}
	}
	list := []kmip.Attribute{
		at(kmip.AttributeNameUniqueIdentifier, obj.ID),
		at(kmip.AttributeNameObjectType, kmip.ObjectTypeSymmetricKey),
		at(kmip.AttributeNameCryptographicAlgorithm, kmip.CryptographicAlgorithmAES),
		at(kmip.AttributeNameCryptographicLength, int32(256)),
		at(kmip.AttributeNameState, kmip.State(obj.State)),
	}
	for _, d := range []struct {
		n kmip.AttributeName
		t time.Time
	}{
		{kmip.AttributeNameInitialDate, obj.Created},
		{kmip.AttributeNameActivationDate, obj.Activated},
		{kmip.AttributeNameDeactivationDate, obj.Deactivated},
		{kmip.AttributeNameCompromiseDate, obj.Compromised},
		{kmip.AttributeNameDestroyDate, obj.Destroyed},
		{kmip.AttributeNameLastChangeDate, obj.LastChange},
	} {
		if !d.t.IsZero() {
			list = append(list, at(d.n, d.t.UTC().Truncate(time.Second)))
		}
	}
	stored, err := decodeAttrs(obj.Attrs)
	if err != nil {
		return nil, err
	}
	return append(list, stored...), nil
}

// objectAttributes resolves uid (or the ID placeholder) and returns the
// object's id and every attribute the caller may see.
func (s *Server) objectAttributes(ctx context.Context, uid string) (string, []kmip.Attribute, error) {
	id, err := s.id(ctx, uid)
	if err != nil {
		return "", nil, err
	}
	obj, err := s.cfg.Backend.Object(ctx, callerOf(ctx), id)
	if err != nil {
		return "", nil, kerr(err)
	}
	all, err := attributes(obj)
	if err != nil {
		return "", nil, kerr(err)
	}
	return id, all, nil
}

func (s *Server) getAttributes(ctx context.Context, req *payloads.GetAttributesRequestPayload) (*payloads.GetAttributesResponsePayload, error) {
	id, all, err := s.objectAttributes(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	resp := &payloads.GetAttributesResponsePayload{UniqueIdentifier: id}
	for _, a := range all {
		if len(req.AttributeName) == 0 || slices.Contains(req.AttributeName, a.AttributeName) {
			resp.Attribute = append(resp.Attribute, a)
		}
	}
	return resp, nil
}

func (s *Server) getAttributeList(ctx context.Context, req *payloads.GetAttributeListRequestPayload) (*payloads.GetAttributeListResponsePayload, error) {
	id, all, err := s.objectAttributes(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	resp := &payloads.GetAttributeListResponsePayload{UniqueIdentifier: id}
	for _, a := range all {
		if !slices.Contains(resp.AttributeName, a.AttributeName) {
			resp.AttributeName = append(resp.AttributeName, a.AttributeName)
		}
	}
	return resp, nil
}

// changeAttrs loads id's stored attributes, lets fn change them and stores
// the result.
func (s *Server) changeAttrs(ctx context.Context, uid string, fn func([]kmip.Attribute) ([]kmip.Attribute, error)) (string, error) {
	id, err := s.id(ctx, uid)
	if err != nil {
		return "", err
	}
	c := callerOf(ctx)
	obj, err := s.cfg.Backend.Object(ctx, c, id)
	if err != nil {
		return "", kerr(err)
	}
	cur, err := decodeAttrs(obj.Attrs)
	if err != nil {
		return "", kerr(err)
	}
	next, err := fn(cur)
	if err != nil {
		return "", err
	}
	enc, err := encodeAttrs(next)
	if err != nil {
		return "", err
	}
	if _, err := s.cfg.Backend.SetAttributes(ctx, c, id, enc); err != nil {
		return "", kerr(err)
	}
	return id, nil
}

func checkSettable(a kmip.Attribute) error {
	if !isSettable(a.AttributeName) {
		return kmipserver.Errorf(kmip.ResultReasonPermissionDenied, "attribute %q cannot be changed by a client", cut(string(a.AttributeName)))
	}
	if a.AttributeValue == nil {
		return invalid("attribute %q has no value", cut(string(a.AttributeName)))
	}
	return nil
}

func (s *Server) addAttribute(ctx context.Context, req *payloads.AddAttributeRequestPayload) (*payloads.AddAttributeResponsePayload, error) {
	a := req.Attribute
	if err := checkSettable(a); err != nil {
		return nil, err
	}
	var added kmip.Attribute
	id, err := s.changeAttrs(ctx, req.UniqueIdentifier, func(cur []kmip.Attribute) ([]kmip.Attribute, error) {
		n := int32(0)
		for _, c := range cur {
			if c.AttributeName == a.AttributeName {
				n = max(n, index(c)+1)
			}
		}
		if n > 0 && !allowsMany(a.AttributeName) {
			return nil, kmipserver.Errorf(kmip.ResultReasonIllegalOperation, "attribute %q is single-valued and already set", cut(string(a.AttributeName)))
		}
		added = kmip.Attribute{AttributeName: a.AttributeName, AttributeValue: a.AttributeValue}
		if n > 0 {
			added.AttributeIndex = &n
		}
		return append(cur, added), nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.AddAttributeResponsePayload{UniqueIdentifier: id, Attribute: added}, nil
}

func index(a kmip.Attribute) int32 {
	if a.AttributeIndex == nil {
		return 0
	}
	return *a.AttributeIndex
}

func (s *Server) modifyAttribute(ctx context.Context, req *payloads.ModifyAttributeRequestPayload) (*payloads.ModifyAttributeResponsePayload, error) {
	a := req.Attribute
	if err := checkSettable(a); err != nil {
		return nil, err
	}
	id, err := s.changeAttrs(ctx, req.UniqueIdentifier, func(cur []kmip.Attribute) ([]kmip.Attribute, error) {
		for i, c := range cur {
			if c.AttributeName == a.AttributeName && index(c) == index(a) {
				cur[i].AttributeValue = a.AttributeValue
				return cur, nil
			}
		}
		return nil, kmipserver.Errorf(kmip.ResultReasonItemNotFound, "attribute %q index %d is not set", cut(string(a.AttributeName)), index(a))
	})
	if err != nil {
		return nil, err
	}
	return &payloads.ModifyAttributeResponsePayload{UniqueIdentifier: id, Attribute: a}, nil
}

func (s *Server) deleteAttribute(ctx context.Context, req *payloads.DeleteAttributeRequestPayload) (*payloads.DeleteAttributeResponsePayload, error) {
	name := req.AttributeName
	if !isSettable(name) {
		return nil, kmipserver.Errorf(kmip.ResultReasonPermissionDenied, "attribute %q cannot be deleted by a client", cut(string(name)))
	}
	want := int32(0)
	if req.AttributeIndex != nil {
		want = *req.AttributeIndex
	}
	var deleted kmip.Attribute
	id, err := s.changeAttrs(ctx, req.UniqueIdentifier, func(cur []kmip.Attribute) ([]kmip.Attribute, error) {
		for i, c := range cur {
			if c.AttributeName == name && index(c) == want {
				deleted = c
				return slices.Delete(cur, i, i+1), nil
			}
		}
		return nil, kmipserver.Errorf(kmip.ResultReasonItemNotFound, "attribute %q index %d is not set", cut(string(name)), want)
	})
	if err != nil {
		return nil, err
	}
	return &payloads.DeleteAttributeResponsePayload{UniqueIdentifier: id, Attribute: deleted}, nil
}

// locate filters the caller's visible objects by the request's attributes:
// Name, Object Type, State, Cryptographic Algorithm and Length, and any
// stored attribute by equal value. Other attributes (dates, links) are
// refused by name rather than ignored.
func (s *Server) locate(ctx context.Context, req *payloads.LocateRequestPayload) (*payloads.LocateResponsePayload, error) {
	objs, err := s.cfg.Backend.List(ctx, callerOf(ctx))
	if err != nil {
		return nil, kerr(err)
	}
	for _, a := range req.Attribute {
		if a.AttributeName == kmip.AttributeNameUniqueIdentifier {
			continue
		}
		if !isSettable(a.AttributeName) && !slices.Contains([]kmip.AttributeName{
			kmip.AttributeNameObjectType, kmip.AttributeNameState, kmip.AttributeNameCryptographicAlgorithm,
			kmip.AttributeNameCryptographicLength, kmip.AttributeNameCryptographicUsageMask,
		}, a.AttributeName) {
			return nil, invalid("locate by %q is not supported", cut(string(a.AttributeName)))
		}
	}
	slices.SortFunc(objs, func(a, b Object) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c // newest first
		}
		return compare(a.ID, b.ID)
	})
	resp := &payloads.LocateResponsePayload{}
	skipped := int32(0)
	var matched int32
	for _, obj := range objs {
		all, err := attributes(obj)
		if err != nil {
			continue
		}
		if !matches(all, req.Attribute) {
			continue
		}
		matched++
		if skipped < req.OffsetItems {
			skipped++
			continue
		}
		if req.MaximumItems > 0 && int32(len(resp.UniqueIdentifier)) >= req.MaximumItems {
			continue
		}
		resp.UniqueIdentifier = append(resp.UniqueIdentifier, obj.ID)
	}
	if req.MaximumItems > 0 || req.OffsetItems > 0 {
		resp.LocatedItems = &matched
	}
	return resp, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// matches reports whether every filter is met by some attribute of all.
func matches(all []kmip.Attribute, filters []kmip.Attribute) bool {
	for _, f := range filters {
		ok := false
		for _, a := range all {
			if a.AttributeName == f.AttributeName && sameValue(a.AttributeValue, f.AttributeValue) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func sameValue(a, b any) bool {
	if an, ok := a.(kmip.Name); ok {
		bn, ok := b.(kmip.Name)
		return ok && an.NameValue == bn.NameValue
	}
	return string(ttlv.MarshalTTLV(&kmip.Attribute{AttributeName: "v", AttributeValue: a})) ==
		string(ttlv.MarshalTTLV(&kmip.Attribute{AttributeName: "v", AttributeValue: b}))
}

// check answers Check (KMIP 1.0 §4.4): the object exists for the caller
// and its usage mask allows what the request names. Usage limits and
// lease time are not tracked, and refused by name.
func (s *Server) check(ctx context.Context, req *kmip.UnknownPayload) (*kmip.UnknownPayload, error) {
	var uid string
	var mask *kmip.CryptographicUsageMask
	for _, f := range req.Fields {
		switch f.Tag {
		case kmip.TagUniqueIdentifier:
			v, ok := f.Value.(string)
			if !ok {
				return nil, invalid("Unique Identifier: wrong type")
			}
			uid = v
		case kmip.TagCryptographicUsageMask:
			switch v := f.Value.(type) {
			case int32:
				m := kmip.CryptographicUsageMask(v)
				mask = &m
			case kmip.CryptographicUsageMask:
				mask = &v
			default:
				return nil, invalid("Cryptographic Usage Mask: wrong type")
			}
		default:
			return nil, kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "Check of %s is not supported", cut(ttlv.TagString(f.Tag)))
		}
	}
	id, err := s.id(ctx, uid)
	if err != nil {
		return nil, err
	}
	obj, err := s.cfg.Backend.Object(ctx, callerOf(ctx), id)
	if err != nil {
		return nil, kerr(err)
	}
	if mask != nil {
		all, err := attributes(obj)
		if err != nil {
			return nil, kerr(err)
		}
		var have kmip.CryptographicUsageMask
		for _, a := range all {
			if m, ok := a.AttributeValue.(kmip.CryptographicUsageMask); ok && a.AttributeName == kmip.AttributeNameCryptographicUsageMask {
				have = m
			}
		}
		if *mask&^have != 0 {
			return nil, kmipserver.Errorf(kmip.ResultReasonIllegalOperation, "the usage mask does not allow it")
		}
	}
	return kmip.NewUnknownPayload(kmip.OperationCheck, ttlv.Value{Tag: kmip.TagUniqueIdentifier, Value: id}), nil
}

func (s *Server) activate(ctx context.Context, req *payloads.ActivateRequestPayload) (*payloads.ActivateResponsePayload, error) {
	id, err := s.id(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Backend.Activate(ctx, callerOf(ctx), id); err != nil {
		return nil, kerr(err)
	}
	return &payloads.ActivateResponsePayload{UniqueIdentifier: id}, nil
}

func (s *Server) revoke(ctx context.Context, req *payloads.RevokeRequestPayload) (*payloads.RevokeResponsePayload, error) {
	id, err := s.id(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	code := req.RevocationReason.RevocationReasonCode
	if code == 0 {
		return nil, kmipserver.Errorf(kmip.ResultReasonMissingData, "a revocation reason is required")
	}
	compromised := code == kmip.RevocationReasonCodeKeyCompromise || code == kmip.RevocationReasonCodeCACompromise
	if err := s.cfg.Backend.Revoke(ctx, callerOf(ctx), id, compromised); err != nil {
		return nil, kerr(err)
	}
	return &payloads.RevokeResponsePayload{UniqueIdentifier: id}, nil
}

func (s *Server) destroy(ctx context.Context, req *payloads.DestroyRequestPayload) (*payloads.DestroyResponsePayload, error) {
	id, err := s.id(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Backend.Destroy(ctx, callerOf(ctx), id); err != nil {
		return nil, kerr(err)
	}
	return &payloads.DestroyResponsePayload{UniqueIdentifier: id}, nil
}

// checkGCM accepts no parameters (AES-GCM is the default) or parameters
// that say AES-GCM with a 96-bit IV and a 128-bit tag.
func checkGCM(p *kmip.CryptographicParameters) error {
	if p == nil {
		return nil
	}
	if p.BlockCipherMode != 0 && p.BlockCipherMode != kmip.BlockCipherModeGCM {
		return kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "only AES-GCM is supported")
	}
	if p.CryptographicAlgorithm != 0 && p.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES {
		return kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "only AES is supported")
	}
	if p.PaddingMethod != 0 && p.PaddingMethod != kmip.PaddingMethodNone {
		return kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "GCM takes no padding")
	}
	if p.TagLength != 0 && p.TagLength != 16 {
		return kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "only 16-byte GCM tags are supported")
	}
	if p.IVLength != 0 && p.IVLength != 96 {
		return kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "only 96-bit GCM IVs are supported")
	}
	return nil
}

// v14 reports whether the request speaks KMIP 1.4, which carries the GCM
// tag in its own field; before 1.4 the tag is appended to the data.
func v14(ctx context.Context) bool {
	return ttlv.CompareVersions(kmipserver.GetProtocolVersion(ctx), kmip.V1_4) >= 0
}

func (s *Server) encrypt(ctx context.Context, req *payloads.EncryptRequestPayload) (*payloads.EncryptResponsePayload, error) {
	id, err := s.id(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if err := checkGCM(req.CryptographicParameters); err != nil {
		return nil, err
	}
	if len(req.IVCounterNonce) > 0 {
		return nil, invalid("the server generates AES-GCM nonces: send no IV")
	}
	if req.CorrelationValue != nil || req.InitIndicator != nil || req.FinalIndicator != nil {
		return nil, kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "streaming encryption is not supported")
	}
	sealed, err := s.cfg.Backend.Encrypt(ctx, callerOf(ctx), id, req.Data, req.AuthenticatedEncryptionAdditionalData)
	if err != nil {
		return nil, kerr(err)
	}
	resp := &payloads.EncryptResponsePayload{UniqueIdentifier: id, IVCounterNonce: sealed.Nonce}
	if v14(ctx) {
		resp.Data, resp.AuthenticatedEncryptionTag = sealed.Ciphertext, sealed.Tag
	} else {
		resp.Data = append(sealed.Ciphertext, sealed.Tag...)
	}
	return resp, nil
}

func (s *Server) decrypt(ctx context.Context, req *payloads.DecryptRequestPayload) (*payloads.DecryptResponsePayload, error) {
	id, err := s.id(ctx, req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if err := checkGCM(req.CryptographicParameters); err != nil {
		return nil, err
	}
	if req.CorrelationValue != nil || req.InitIndicator != nil || req.FinalIndicator != nil {
		return nil, kmipserver.Errorf(kmip.ResultReasonFeatureNotSupported, "streaming decryption is not supported")
	}
	if len(req.IVCounterNonce) != 12 {
		return nil, invalid("an AES-GCM IV of 12 bytes is required")
	}
	sealed := Sealed{Nonce: req.IVCounterNonce, Ciphertext: req.Data, Tag: req.AuthenticatedEncryptionTag}
	if len(sealed.Tag) == 0 {
		if len(req.Data) < 16 {
			return nil, kmipserver.Errorf(kmip.ResultReasonCryptographicFailure, "decryption failed")
		}
		sealed.Ciphertext, sealed.Tag = req.Data[:len(req.Data)-16], req.Data[len(req.Data)-16:]
	}
	pt, err := s.cfg.Backend.Decrypt(ctx, callerOf(ctx), id, sealed, req.AuthenticatedEncryptionAdditionalData)
	if err != nil {
		return nil, kerr(err)
	}
	return &payloads.DecryptResponsePayload{UniqueIdentifier: id, Data: pt}, nil
}

// encodeAttrs encodes stored attributes, checking the limits.
func encodeAttrs(list []kmip.Attribute) ([]Attr, error) {
	if len(list) > MaxAttrs {
		return nil, invalid("at most %d attributes", MaxAttrs)
	}
	out := make([]Attr, 0, len(list))
	for _, a := range list {
		if n, ok := a.AttributeValue.(kmip.Name); ok {
			if n.NameValue == "" || len(n.NameValue) > MaxNameLen {
				return nil, invalid("a Name is 1 to %d bytes", MaxNameLen)
			}
		}
		b := ttlv.MarshalTTLV(&a)
		if len(b) > MaxAttrBytes {
			return nil, invalid("attribute %q is over %d bytes", cut(string(a.AttributeName)), MaxAttrBytes)
		}
		out = append(out, Attr{Name: string(a.AttributeName), Index: index(a), TTLV: b})
	}
	return out, nil
}

// decodeAttrs decodes what encodeAttrs made.
func decodeAttrs(list []Attr) ([]kmip.Attribute, error) {
	out := make([]kmip.Attribute, 0, len(list))
	for _, a := range list {
		var v kmip.Attribute
		if err := ttlv.UnmarshalTTLV(a.TTLV, &v); err != nil {
			return nil, fmt.Errorf("kmip: stored attribute %q: %w", cut(a.Name), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Names returns the values of the Name attributes among stored attributes
// (for listings: the CLI's keys table).
func Names(attrs []Attr) []string {
	list, err := decodeAttrs(attrs)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range list {
		if n, ok := a.AttributeValue.(kmip.Name); ok && a.AttributeName == kmip.AttributeNameName {
			out = append(out, n.NameValue)
		}
	}
	return out
}
