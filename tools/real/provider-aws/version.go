package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// aws.secretsmanager.SecretVersion (terraform-provider-aws aws_secretsmanager_secret_version).

var versionInputs = []string{
	"region", "secretBinary", "secretId", "secretString", "secretStringWo", "secretStringWoVersion", "versionStages",
}

const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
	// The resource ID is "<secretId>|<versionId>", as upstream's.
	versionIDSeparator = "|"
)

func checkVersion(req plugin.CheckRequest) (plugin.CheckResponse, error) {
	news := req.News
	var f failures
	f.checkKeys("aws.secretsmanager.SecretVersion", news, versionInputs, nil)
	for _, k := range []string{"region", "secretBinary", "secretId", "secretString", "secretStringWo"} {
		f.checkString(news, k)
	}
	if !get(news, "secretId").Set {
		f.add("secretId", `Missing required argument: The argument "secretId" is required, but no definition was found.`)
	}
	// The three ways to give the value exclude each other (upstream's ConflictsWith).
	values := []string{}
	for _, k := range []string{"secretString", "secretBinary", "secretStringWo"} {
		if get(news, resource.PropertyKey(k)).Set {
			values = append(values, k)
		}
	}
	if len(values) > 1 {
		f.add(values[1], `"%s": conflicts with %s`, values[1], values[0])
	}
	if in := get(news, "secretBinary"); in.Known && in.V.IsString() {
		if _, err := base64.StdEncoding.DecodeString(in.V.StringValue()); err != nil {
			// Never the value itself: it is secret.
			f.add("secretBinary", "secretBinary must be base64-encoded (it is not valid base64)")
		}
	}
	wo, woVersion := get(news, "secretStringWo").Set, get(news, "secretStringWoVersion").Set
	if wo != woVersion {
		f.add("secretStringWoVersion", `"secretStringWo": all of `+"`secretStringWo,secretStringWoVersion`"+` must be specified`)
	}
	if in := get(news, "secretStringWoVersion"); in.Known && (!in.V.IsNumber() || in.V.NumberValue() != float64(int64(in.V.NumberValue()))) {
		f.add("secretStringWoVersion", "secretStringWoVersion must be a whole number, got a %s", in.V.TypeString())
	}
	if in := get(news, "versionStages"); in.Known {
		if !in.V.IsArray() {
			f.add("versionStages", "versionStages must be a list of strings, got a %s", in.V.TypeString())
		} else {
			for i, e := range in.V.ArrayValue() {
				if !e.IsString() && !e.IsComputed() && !e.IsSecret() {
					f.add("versionStages", "versionStages[%d] must be a string, got a %s", i, e.TypeString())
				}
			}
		}
	}
	return plugin.CheckResponse{Properties: news, Failures: f}, nil
}

func stageSet(m resource.PropertyMap) ([]string, bool) {
	list, ok := strList(m, "versionStages")
	if !ok {
		return nil, false
	}
	seen := map[string]bool{}
	out := []string{}
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, true
}

// diffVersion: a new value (or a new write-only version, secret or region) is a new version,
// i.e. a replacement; only versionStages changes in place.
func diffVersion(req plugin.DiffRequest) plugin.DiffResult {
	olds, news := req.OldOutputs, req.NewInputs
	detailed := map[string]plugin.PropertyDiff{}
	for _, key := range []resource.PropertyKey{"secretId", "secretString", "secretBinary", "secretStringWoVersion"} {
		o, n := emptyAsUnset(get(olds, key)), emptyAsUnset(get(news, key))
		if key == "secretString" && get(olds, "hasSecretStringWo").Known && get(olds, "hasSecretStringWo").V.IsBool() &&
			get(olds, "hasSecretStringWo").V.BoolValue() && !n.Set {
			continue // a write-only value is not kept in state; nothing to compare
		}
		if !sameInput(o, n) {
			// The diff names the property only; values of secretString/secretBinary stay secret.
			detailed[string(key)] = plugin.PropertyDiff{Kind: diffKind(o, n, true)}
		}
	}
	if n := get(news, "region"); n.Set && !sameInput(get(olds, "region"), n) {
		detailed["region"] = plugin.PropertyDiff{Kind: diffKind(get(olds, "region"), n, true)}
	}
	// versionStages is Optional+Computed: unset keeps whatever AWS has.
	if n := get(news, "versionStages"); n.Set {
		newStages, newKnown := stageSet(news)
		oldStages, _ := stageSet(olds)
		if !newKnown || strings.Join(newStages, ",") != strings.Join(oldStages, ",") {
			detailed["versionStages"] = plugin.PropertyDiff{Kind: diffKind(get(olds, "versionStages"), n, false)}
		}
	}
	return diffResult(detailed)
}

func parseVersionID(id string) (secretID, versionID string, err error) {
	parts := strings.SplitN(id, versionIDSeparator, 2)
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("unexpected format of ID (%s), expected SecretID%sVersionID", id, versionIDSeparator)
	}
	return parts[0], parts[1], nil
}

func (p *provider) createVersion(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	news := req.Properties
	if req.Preview {
		st := news.Copy()
		delete(st, "secretStringWo")
		st["arn"], st["secretArn"], st["versionId"] = unknown(), unknown(), unknown()
		if !get(news, "versionStages").Set {
			st["versionStages"] = unknown()
		}
		st["hasSecretStringWo"] = resource.NewBoolProperty(get(news, "secretStringWo").Set)
		if !get(news, "region").Set {
			st["region"] = p.previewRegion()
		}
		return plugin.CreateResponse{Properties: st, Status: resource.StatusOK}, nil
	}
	client, region, err := p.client(str(news, "region"))
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	secretID := str(news, "secretId")
	input := &secretsmanager.PutSecretValueInput{
		ClientRequestToken: aws.String(requestToken()),
		SecretId:           aws.String(secretID),
	}
	if b := str(news, "secretBinary"); b != "" {
		decoded, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return plugin.CreateResponse{}, errors.New("secretBinary must be base64-encoded (it is not valid base64)")
		}
		input.SecretBinary = decoded
	}
	if s := str(news, "secretString"); s != "" {
		input.SecretString = aws.String(s)
	}
	if s := str(news, "secretStringWo"); s != "" {
		input.SecretString = aws.String(s)
	}
	if stages, ok := stageSet(news); ok && len(stages) > 0 {
		input.VersionStages = stages
	}
	out, err := client.PutSecretValue(ctx, input)
	if err != nil {
		return plugin.CreateResponse{}, fmt.Errorf("putting Secrets Manager Secret (%s) value: %w", secretID, err)
	}
	versionID := aws.ToString(out.VersionId)
	id := secretID + versionIDSeparator + versionID

	// Upstream waits for the new version to be readable (eventual consistency).
	var st resource.PropertyMap
	for attempt := 0; ; attempt++ {
		st, err = versionState(ctx, client, secretID, versionID, region, news)
		if err != nil || st != nil || attempt == 20 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	if st == nil {
		return plugin.CreateResponse{}, fmt.Errorf("waiting for Secrets Manager Secret Version (%s) create: not found", id)
	}
	return plugin.CreateResponse{ID: resource.ID(id), Properties: st, Status: resource.StatusOK}, nil
}

// gone reports the errors upstream treats as "this version no longer exists".
func gone(err error) bool {
	var notFound *types.ResourceNotFoundException
	return errors.As(err, &notFound) || isInvalidRequest(err, "because it was deleted") ||
		isInvalidRequest(err, "because it was marked for deletion")
}

// versionState reads one version and builds its state (nil when it is gone). prior supplies
// what AWS does not return: secretId as configured, the write-only markers.
func versionState(ctx context.Context, client *secretsmanager.Client, secretID, versionID, region string,
	prior resource.PropertyMap,
) (resource.PropertyMap, error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(secretID), VersionId: aws.String(versionID),
	})
	if gone(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secrets Manager Secret Version (%s%s%s): %w", secretID, versionIDSeparator, versionID, err)
	}
	stages := append([]string(nil), out.VersionStages...)
	sort.Strings(stages)
	writeOnly := get(prior, "secretStringWo").Set
	if in := get(prior, "hasSecretStringWo"); in.Known && in.V.IsBool() && in.V.BoolValue() {
		writeOnly = true
	}
	st := resource.PropertyMap{
		"arn":               resource.NewStringProperty(aws.ToString(out.ARN)),
		"secretArn":         resource.NewStringProperty(aws.ToString(out.ARN)),
		"secretId":          resource.NewStringProperty(secretID),
		"versionId":         resource.NewStringProperty(aws.ToString(out.VersionId)),
		"versionStages":     stringsProperty(stages),
		"region":            resource.NewStringProperty(region),
		"hasSecretStringWo": resource.NewBoolProperty(writeOnly),
	}
	if out.SecretString != nil && !writeOnly {
		st["secretString"] = resource.MakeSecret(resource.NewStringProperty(aws.ToString(out.SecretString)))
	}
	if out.SecretBinary != nil {
		st["secretBinary"] = resource.MakeSecret(resource.NewStringProperty(base64.StdEncoding.EncodeToString(out.SecretBinary)))
	}
	if v, ok := prior["secretStringWoVersion"]; ok && !v.IsNull() {
		st["secretStringWoVersion"] = v
	}
	return st, nil
}

func (p *provider) readVersion(ctx context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	secretID, versionID, err := parseVersionID(string(req.ID))
	if err != nil {
		return plugin.ReadResponse{}, err
	}
	client, region, err := p.client(regionOf(req.State))
	if err != nil {
		return plugin.ReadResponse{}, err
	}
	st, err := versionState(ctx, client, secretID, versionID, region, req.State)
	if err != nil || st == nil {
		return plugin.ReadResponse{}, err
	}
	inputs := req.Inputs
	if len(req.State) == 0 {
		inputs = resource.PropertyMap{"secretId": st["secretId"]}
		if v, ok := st["secretString"]; ok {
			inputs["secretString"] = v
		}
	}
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{ID: req.ID, Inputs: inputs, Outputs: st},
		Status:     resource.StatusOK,
	}, nil
}

// updateVersion moves staging labels, as upstream: added labels are moved to this version
// (AWSCURRENT taken from whichever version holds it), removed ones are detached from it,
// except AWSCURRENT, which Secrets Manager only moves, never removes.
func (p *provider) updateVersion(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	if req.Preview {
		st := req.OldOutputs.Copy()
		if v, ok := req.NewInputs["versionStages"]; ok {
			st["versionStages"] = v
		}
		return plugin.UpdateResponse{Properties: st, Status: resource.StatusOK}, nil
	}
	secretID, versionID, err := parseVersionID(string(req.ID))
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	client, region, err := p.client(regionOf(req.OldOutputs))
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	oldStages, _ := stageSet(req.OldOutputs)
	newStages, _ := stageSet(req.NewInputs)
	has := func(list []string, s string) bool {
		for _, e := range list {
			if e == s {
				return true
			}
		}
		return false
	}
	movedCurrent := false
	for _, stage := range newStages {
		if has(oldStages, stage) {
			continue
		}
		input := &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(secretID), VersionStage: aws.String(stage), MoveToVersionId: aws.String(versionID),
		}
		if stage == stageCurrent {
			holder, err := currentVersion(ctx, client, secretID)
			if err != nil {
				return plugin.UpdateResponse{}, err
			}
			input.RemoveFromVersionId = aws.String(holder)
			movedCurrent = true
		}
		if _, err := client.UpdateSecretVersionStage(ctx, input); err != nil {
			return plugin.UpdateResponse{}, fmt.Errorf("adding Secrets Manager Secret Version (%s) stage (%s): %w", req.ID, stage, err)
		}
	}
	for _, stage := range oldStages {
		if has(newStages, stage) || stage == stageCurrent || (movedCurrent && stage == stagePrevious) {
			continue
		}
		if _, err := client.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(secretID), VersionStage: aws.String(stage), RemoveFromVersionId: aws.String(versionID),
		}); err != nil {
			return plugin.UpdateResponse{}, fmt.Errorf("deleting Secrets Manager Secret Version (%s) stage (%s): %w", req.ID, stage, err)
		}
	}
	prior := req.OldOutputs.Copy()
	for k, v := range req.NewInputs {
		prior[k] = v
	}
	st, err := versionState(ctx, client, secretID, versionID, region, prior)
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	if st == nil {
		return plugin.UpdateResponse{}, fmt.Errorf("reading Secrets Manager Secret Version (%s) after update: not found", req.ID)
	}
	return plugin.UpdateResponse{Properties: st, Status: resource.StatusOK}, nil
}

func currentVersion(ctx context.Context, client *secretsmanager.Client, secretID string) (string, error) {
	pages := secretsmanager.NewListSecretVersionIdsPaginator(client, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(secretID)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("listing Secrets Manager Secret (%s) version IDs: %w", secretID, err)
		}
		for _, v := range page.Versions {
			for _, s := range v.VersionStages {
				if s == stageCurrent {
					return aws.ToString(v.VersionId), nil
				}
			}
		}
	}
	return "", nil
}

// deleteVersion detaches the staging labels recorded in state from this version, never
// AWSCURRENT (Secrets Manager cannot remove it, only move it), exactly as upstream. A version
// without labels is left for Secrets Manager to expire; the secret's other versions and their
// labels are untouched. A secret that is gone or scheduled for deletion ends it quietly.
func (p *provider) deleteVersion(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	secretID, versionID, err := parseVersionID(string(req.ID))
	if err != nil {
		return plugin.DeleteResponse{}, err
	}
	client, _, err := p.client(regionOf(req.Outputs))
	if err != nil {
		return plugin.DeleteResponse{}, err
	}
	stages, _ := stageSet(req.Outputs)
	for _, stage := range stages {
		if stage == stageCurrent {
			continue
		}
		_, err := client.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(secretID), VersionStage: aws.String(stage), RemoveFromVersionId: aws.String(versionID),
		})
		if gone(err) {
			break
		}
		if err != nil {
			return plugin.DeleteResponse{}, fmt.Errorf("deleting Secrets Manager Secret Version (%s) stage (%s): %w", req.ID, stage, err)
		}
	}
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}
