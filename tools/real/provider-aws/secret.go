package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// aws.secretsmanager.Secret (terraform-provider-aws aws_secretsmanager_secret).

var secretInputs = []string{
	"description", "forceOverwriteReplicaSecret", "kmsKeyId", "name", "namePrefix", "policy",
	"recoveryWindowInDays", "region", "tags",
}

// pulumi-aws inputs of Secret this stand-in does not implement (the program uses none).
var secretUnsupported = []string{"replicas", "type"}

const (
	defaultRecoveryWindow = 30
	uniqueIDSuffixLength  = 26 // terraform-plugin-sdk id.UniqueId: 18-digit timestamp + 8 hex digits
)

var (
	secretNameRE   = regexp.MustCompile(`^[0-9A-Za-z/_+=.@-]+$`)
	uniqueSuffixRE = regexp.MustCompile(`^\d{18}[0-9a-f]{8}$`)
	uniqueCounter  atomic.Uint32
)

func checkSecret(req plugin.CheckRequest) (plugin.CheckResponse, error) {
	news := req.News.Copy()
	var f failures
	f.checkKeys("aws.secretsmanager.Secret", news, secretInputs, secretUnsupported)
	for _, k := range []string{"description", "kmsKeyId", "name", "namePrefix", "policy", "region"} {
		f.checkString(news, k)
	}
	f.checkStringMap(news, "tags")
	if in := get(news, "forceOverwriteReplicaSecret"); in.Known && !in.V.IsBool() {
		f.add("forceOverwriteReplicaSecret", "forceOverwriteReplicaSecret must be true or false, got a %s", in.V.TypeString())
	}

	name, prefix := get(news, "name"), get(news, "namePrefix")
	if name.Set && prefix.Set {
		f.add("name", `"name": conflicts with namePrefix`)
	}
	if name.Known && name.V.IsString() {
		checkSecretName(&f, "name", name.V.StringValue(), 512)
	}
	if prefix.Known && prefix.V.IsString() {
		checkSecretName(&f, "namePrefix", prefix.V.StringValue(), 512-uniqueIDSuffixLength)
	}
	if in := get(news, "recoveryWindowInDays"); in.Known {
		n := in.V
		if !n.IsNumber() || n.NumberValue() != float64(int64(n.NumberValue())) {
			f.add("recoveryWindowInDays", "recoveryWindowInDays must be a whole number, got a %s", n.TypeString())
		} else if d := int64(n.NumberValue()); d != 0 && (d < 7 || d > 30) {
			f.add("recoveryWindowInDays", "expected recoveryWindowInDays to be in the range (7 - 30), got %d; "+
				"expected recoveryWindowInDays to be one of [0], got %d", d, d)
		}
	}
	if in := get(news, "policy"); in.Known && in.V.IsString() && in.V.StringValue() != "" {
		var doc any
		if err := json.Unmarshal([]byte(in.V.StringValue()), &doc); err != nil {
			f.add("policy", `"policy" contains an invalid JSON: %v`, err)
		}
	}

	// pulumi-aws auto-names a Secret without name or namePrefix: the resource name plus a
	// random suffix, drawn from the engine's per-resource seed so a re-check gives the same name.
	if !name.Set && !prefix.Set {
		if old := get(req.Olds, "name"); old.Known {
			news["name"] = old.V
		} else {
			news["name"] = resource.NewStringProperty(autoName(req.Name, req.RandomSeed))
		}
	}
	return plugin.CheckResponse{Properties: news, Failures: f}, nil
}

func checkSecretName(f *failures, key, value string, max int) {
	if len(value) < 1 || len(value) > max {
		f.add(key, "expected length of %s to be in the range (1 - %d), got %d characters", key, max, len(value))
	}
	if value != "" && !secretNameRE.MatchString(value) {
		f.add(key, "invalid value for %s (must contain only alphanumeric characters and the characters /_+=.@-)", key)
	}
}

func autoName(resourceName string, seed []byte) string {
	if len(seed) == 0 {
		seed = []byte(requestToken())
	}
	sum := sha256.Sum256(seed)
	return resourceName + "-" + hex.EncodeToString(sum[:])[:7]
}

// uniqueName is terraform-plugin-sdk's id.PrefixedUniqueId: prefix + UTC timestamp + counter.
func uniqueName(prefix string) string {
	ts := strings.Replace(time.Now().UTC().Format("20060102150405.0000"), ".", "", 1)
	return fmt.Sprintf("%s%s%08x", prefix, ts, uniqueCounter.Add(1))
}

// namePrefixFromName is upstream's create.NamePrefixFromName: the prefix of a generated name.
func namePrefixFromName(name string) string {
	if len(name) < uniqueIDSuffixLength {
		return ""
	}
	if cut := len(name) - uniqueIDSuffixLength; uniqueSuffixRE.MatchString(name[cut:]) {
		return name[:cut]
	}
	return ""
}

func recoveryWindow(m resource.PropertyMap) int64 {
	if in := get(m, "recoveryWindowInDays"); in.Known && in.V.IsNumber() {
		return int64(in.V.NumberValue())
	}
	return defaultRecoveryWindow
}

func forceOverwrite(m resource.PropertyMap) bool {
	in := get(m, "forceOverwriteReplicaSecret")
	return in.Known && in.V.IsBool() && in.V.BoolValue()
}

// sameJSON compares policies as documents (upstream suppresses equivalent-policy diffs).
func sameJSON(a, b string) bool {
	if a == b {
		return true
	}
	var da, db any
	if json.Unmarshal([]byte(a), &da) != nil || json.Unmarshal([]byte(b), &db) != nil {
		return false
	}
	return reflect.DeepEqual(da, db)
}

func diffSecret(req plugin.DiffRequest) plugin.DiffResult {
	olds, news := req.OldOutputs, req.NewInputs
	detailed := map[string]plugin.PropertyDiff{}
	note := func(key string, o, n input, replace bool) {
		detailed[key] = plugin.PropertyDiff{Kind: diffKind(o, n, replace)}
	}
	// name and namePrefix are Optional+Computed and ForceNew: unset keeps the state's value.
	for _, key := range []resource.PropertyKey{"name", "namePrefix", "region"} {
		o, n := get(olds, key), get(news, key)
		if n.Set && !sameInput(o, n) {
			note(string(key), o, n, true)
		}
	}
	for _, key := range []resource.PropertyKey{"description", "kmsKeyId"} {
		o, n := emptyAsUnset(get(olds, key)), emptyAsUnset(get(news, key))
		if !sameInput(o, n) {
			note(string(key), o, n, false)
		}
	}
	if o, n := emptyAsUnset(get(olds, "policy")), emptyAsUnset(get(news, "policy")); !sameInput(o, n) {
		if !(o.Known && n.Known && sameJSON(o.V.StringValue(), n.V.StringValue())) {
			note("policy", o, n, false)
		}
	}
	if recoveryWindow(olds) != recoveryWindow(news) || get(news, "recoveryWindowInDays").Set && !get(news, "recoveryWindowInDays").Known {
		note("recoveryWindowInDays", get(olds, "recoveryWindowInDays"), get(news, "recoveryWindowInDays"), false)
	}
	if forceOverwrite(olds) != forceOverwrite(news) {
		note("forceOverwriteReplicaSecret", get(olds, "forceOverwriteReplicaSecret"), get(news, "forceOverwriteReplicaSecret"), false)
	}
	oldTags, newTags := get(olds, "tags"), get(news, "tags")
	if newTags.Set && !newTags.Known {
		note("tags", oldTags, newTags, false)
	} else if !reflect.DeepEqual(nonEmpty(strMap(olds, "tags")), nonEmpty(strMap(news, "tags"))) {
		note("tags", oldTags, newTags, false)
	}
	return diffResult(detailed)
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// allTags is tags_all: the provider's default tags overlaid with the resource's own.
func (p *provider) allTags(tags map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range p.defaultTags() {
		out[k] = v
	}
	for k, v := range tags {
		out[k] = v
	}
	return out
}

func (p *provider) createSecret(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	news := req.Properties
	if req.Preview {
		st := news.Copy()
		st["arn"] = unknown()
		if !get(news, "name").Set {
			st["name"] = unknown()
		}
		st["namePrefix"] = resource.NewStringProperty(str(news, "namePrefix"))
		if in := get(news, "tags"); in.Set && !in.Known {
			st["tagsAll"] = unknown()
		} else {
			st["tagsAll"] = mapProperty(p.allTags(strMap(news, "tags")))
		}
		st["recoveryWindowInDays"] = resource.NewNumberProperty(float64(recoveryWindow(news)))
		st["forceOverwriteReplicaSecret"] = resource.NewBoolProperty(forceOverwrite(news))
		if !get(news, "region").Set {
			st["region"] = p.previewRegion()
		}
		return plugin.CreateResponse{Properties: st, Status: resource.StatusOK}, nil
	}

	client, region, err := p.client(str(news, "region"))
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	name := str(news, "name")
	if name == "" {
		prefix := str(news, "namePrefix")
		if prefix == "" {
			prefix = "terraform-"
		}
		name = uniqueName(prefix)
	}
	input := &secretsmanager.CreateSecretInput{
		ClientRequestToken:          aws.String(requestToken()),
		Description:                 aws.String(str(news, "description")),
		ForceOverwriteReplicaSecret: forceOverwrite(news),
		Name:                        aws.String(name),
	}
	if kms := str(news, "kmsKeyId"); kms != "" {
		input.KmsKeyId = aws.String(kms)
	}
	for k, v := range p.allTags(strMap(news, "tags")) {
		input.Tags = append(input.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	sort.Slice(input.Tags, func(i, j int) bool { return *input.Tags[i].Key < *input.Tags[j].Key })
	out, err := client.CreateSecret(ctx, input)
	if err != nil {
		err = fmt.Errorf("creating Secrets Manager Secret (%s): %w", name, err)
		if isInvalidRequest(err, "scheduled for deletion") || p.scheduledForDeletion(ctx, client, name) {
			// Upstream retries this for two minutes and then fails with the same error; say why
			// and how to get out of it instead.
			err = fmt.Errorf("%w\nA secret named %s is scheduled for deletion (a recovery window is running): "+
				"restore it with `aws secretsmanager restore-secret --secret-id %s` and import it, or wait "+
				"for the window to end", err, name, name)
		}
		return plugin.CreateResponse{}, err
	}
	arn := aws.ToString(out.ARN)
	if policy := str(news, "policy"); policy != "" && policy != "{}" {
		if _, err := client.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{
			SecretId: aws.String(arn), ResourcePolicy: aws.String(policy),
		}); err != nil {
			return plugin.CreateResponse{}, fmt.Errorf("putting Secrets Manager Secret (%s) policy: %w "+
				"(the secret itself was created: %s)", name, err, arn)
		}
	}
	st, err := p.secretState(ctx, client, arn, region, news)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	if st == nil {
		return plugin.CreateResponse{}, fmt.Errorf("reading Secrets Manager Secret (%s) after create: not found", arn)
	}
	return plugin.CreateResponse{ID: resource.ID(arn), Properties: st, Status: resource.StatusOK}, nil
}

// scheduledForDeletion tells whether a secret of this name exists with a deletion pending
// (AWS answers CreateSecret with InvalidRequestException then, moto with ResourceExistsException).
func (p *provider) scheduledForDeletion(ctx context.Context, client *secretsmanager.Client, name string) bool {
	out, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	return err == nil && out.DeletedDate != nil
}

// secretState reads the secret and builds its state, or returns nil when it is gone (absent
// or scheduled for deletion, as upstream treats both). recoveryWindowInDays and
// forceOverwriteReplicaSecret exist only in state; they are taken from stateOnly.
func (p *provider) secretState(ctx context.Context, client *secretsmanager.Client, id, region string,
	stateOnly resource.PropertyMap,
) (resource.PropertyMap, error) {
	out, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secrets Manager Secret (%s): %w", id, err)
	}
	if out.DeletedDate != nil {
		return nil, nil
	}
	policy := ""
	pol, err := client.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(id)})
	if err != nil {
		return nil, fmt.Errorf("reading Secrets Manager Secret (%s) policy: %w", id, err)
	}
	if pol.ResourcePolicy != nil {
		policy = aws.ToString(pol.ResourcePolicy)
		if old := str(stateOnly, "policy"); old != "" && sameJSON(old, policy) {
			policy = old // keep the configured spelling of an equivalent document
		}
	}
	all := map[string]string{}
	for _, t := range out.Tags {
		all[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	own := map[string]string{}
	defaults := p.defaultTags()
	for k, v := range all {
		if dv, ok := defaults[k]; !ok || dv != v {
			own[k] = v
		}
	}
	name := aws.ToString(out.Name)
	st := resource.PropertyMap{
		"arn":                         resource.NewStringProperty(aws.ToString(out.ARN)),
		"name":                        resource.NewStringProperty(name),
		"namePrefix":                  resource.NewStringProperty(namePrefixFromName(name)),
		"description":                 resource.NewStringProperty(aws.ToString(out.Description)),
		"kmsKeyId":                    resource.NewStringProperty(aws.ToString(out.KmsKeyId)),
		"policy":                      resource.NewStringProperty(policy),
		"region":                      resource.NewStringProperty(region),
		"replicas":                    resource.NewArrayProperty(nil),
		"tagsAll":                     mapProperty(all),
		"recoveryWindowInDays":        resource.NewNumberProperty(float64(recoveryWindow(stateOnly))),
		"forceOverwriteReplicaSecret": resource.NewBoolProperty(forceOverwrite(stateOnly)),
	}
	if len(own) > 0 {
		st["tags"] = mapProperty(own)
	}
	return st, nil
}

func regionOf(state resource.PropertyMap) string {
	return str(state, "region")
}

// readSecret is refresh (and import): the secret as Secrets Manager has it now.
func (p *provider) readSecret(ctx context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	client, region, err := p.client(regionOf(req.State))
	if err != nil {
		return plugin.ReadResponse{}, err
	}
	stateOnly := req.State
	if len(stateOnly) == 0 {
		stateOnly = req.Inputs
	}
	st, err := p.secretState(ctx, client, string(req.ID), region, stateOnly)
	if err != nil || st == nil {
		return plugin.ReadResponse{}, err // nil state: gone, the engine drops it
	}
	inputs := req.Inputs
	if len(req.State) == 0 {
		// Import: the inputs that reproduce this secret.
		inputs = resource.PropertyMap{"name": st["name"]}
		for _, k := range []resource.PropertyKey{"description", "kmsKeyId", "tags"} {
			if v, ok := st[k]; ok && !(v.IsString() && v.StringValue() == "") {
				inputs[k] = v
			}
		}
	}
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{ID: resource.ID(str(st, "arn")), Inputs: inputs, Outputs: st},
		Status:     resource.StatusOK,
	}, nil
}

func (p *provider) updateSecret(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	olds, news := req.OldOutputs, req.NewInputs
	if req.Preview {
		st := olds.Copy()
		for k, v := range news {
			st[k] = v
		}
		st["tagsAll"] = mapProperty(p.allTags(strMap(news, "tags")))
		return plugin.UpdateResponse{Properties: st, Status: resource.StatusOK}, nil
	}
	id := string(req.ID)
	client, region, err := p.client(regionOf(olds))
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	d := diffSecret(plugin.DiffRequest{OldOutputs: olds, NewInputs: news})
	_, descChanged := d.DetailedDiff["description"]
	_, kmsChanged := d.DetailedDiff["kmsKeyId"]
	if descChanged || kmsChanged {
		input := &secretsmanager.UpdateSecretInput{
			ClientRequestToken: aws.String(requestToken()),
			Description:        aws.String(str(news, "description")),
			SecretId:           aws.String(id),
		}
		if kms := str(news, "kmsKeyId"); kms != "" {
			input.KmsKeyId = aws.String(kms)
		}
		if _, err := client.UpdateSecret(ctx, input); err != nil {
			return plugin.UpdateResponse{}, fmt.Errorf("updating Secrets Manager Secret (%s): %w", id, err)
		}
	}
	if _, ok := d.DetailedDiff["policy"]; ok {
		if policy := str(news, "policy"); policy != "" && policy != "{}" {
			_, err = client.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{
				SecretId: aws.String(id), ResourcePolicy: aws.String(policy),
			})
		} else {
			_, err = client.DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String(id)})
		}
		if err != nil {
			return plugin.UpdateResponse{}, fmt.Errorf("updating Secrets Manager Secret (%s) policy: %w", id, err)
		}
	}
	if err := p.updateTags(ctx, client, id, strMap(olds, "tagsAll"), p.allTags(strMap(news, "tags"))); err != nil {
		return plugin.UpdateResponse{}, err
	}
	st, err := p.secretState(ctx, client, id, region, news)
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	if st == nil {
		return plugin.UpdateResponse{}, fmt.Errorf("reading Secrets Manager Secret (%s) after update: not found", id)
	}
	return plugin.UpdateResponse{Properties: st, Status: resource.StatusOK}, nil
}

func (p *provider) updateTags(ctx context.Context, client *secretsmanager.Client, id string, current, want map[string]string) error {
	var remove []string
	for k := range current {
		if _, ok := want[k]; !ok {
			remove = append(remove, k)
		}
	}
	sort.Strings(remove)
	if len(remove) > 0 {
		if _, err := client.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String(id), TagKeys: remove}); err != nil {
			return fmt.Errorf("untagging Secrets Manager Secret (%s): %w", id, err)
		}
	}
	var add []types.Tag
	for k, v := range want {
		if cv, ok := current[k]; !ok || cv != v {
			add = append(add, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
	}
	if len(add) > 0 {
		sort.Slice(add, func(i, j int) bool { return *add[i].Key < *add[j].Key })
		if _, err := client.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(id), Tags: add}); err != nil {
			return fmt.Errorf("tagging Secrets Manager Secret (%s): %w", id, err)
		}
	}
	return nil
}

// deleteSecret schedules the deletion with the state's recoveryWindowInDays (0: delete now,
// without recovery), as upstream does.
func (p *provider) deleteSecret(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	client, _, err := p.client(regionOf(req.Outputs))
	if err != nil {
		return plugin.DeleteResponse{}, err
	}
	input := &secretsmanager.DeleteSecretInput{SecretId: aws.String(string(req.ID))}
	if w := recoveryWindow(req.Outputs); w == 0 {
		input.ForceDeleteWithoutRecovery = aws.Bool(true)
	} else {
		input.RecoveryWindowInDays = aws.Int64(w)
	}
	_, err = client.DeleteSecret(ctx, input)
	var notFound *types.ResourceNotFoundException
	if err != nil && !errors.As(err, &notFound) {
		return plugin.DeleteResponse{}, fmt.Errorf("deleting Secrets Manager Secret (%s): %w", req.ID, err)
	}
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}

func isInvalidRequest(err error, contains string) bool {
	var invalid *types.InvalidRequestException
	return errors.As(err, &invalid) && strings.Contains(invalid.ErrorMessage(), contains)
}
