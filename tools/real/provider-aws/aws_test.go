package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

var bg = context.Background()

func tokenType(s string) tokens.Type { return tokens.Type(s) }

func pm(m map[string]any) resource.PropertyMap { return resource.NewPropertyMapFromMap(m) }

func secretValue(s string) resource.PropertyValue {
	return resource.MakeSecret(resource.NewStringProperty(s))
}

func newVersion(t *testing.T, p *provider, secretArn, value string) plugin.CreateResponse {
	t.Helper()
	in := pm(map[string]any{"secretId": secretArn})
	in["secretString"] = secretValue(value)
	return mustCreate(t, p, versionType, in)
}

func versionIDOf(t *testing.T, resp plugin.CreateResponse) string {
	t.Helper()
	_, v, err := parseVersionID(string(resp.ID))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The program's SecretStore lifecycle: a secret, a first version, a rotation (new version),
// the old version's delete, refresh, the secret's scheduled deletion.
func TestSecretAndVersionsAgainstMoto(t *testing.T) {
	p := withMoto(t)
	sm, _ := awsClients(t)
	name := uniqueSecretName(t)

	sec := mustCreate(t, p, secretType, pm(map[string]any{
		"name": name, "description": "pms env", "recoveryWindowInDays": 7,
		"tags": map[string]any{"pulumi:stack": "dev", "pulumi:project": "pms-secrets"},
	}))
	arn := string(sec.ID)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:eu-west-1:") || sec.Properties["arn"].StringValue() != arn {
		t.Fatalf("id/arn = %q / %v", arn, sec.Properties["arn"])
	}
	desc, err := sm.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(desc.Name) != name || aws.ToString(desc.Description) != "pms env" || len(desc.Tags) != 2 {
		t.Fatalf("DescribeSecret: name=%q description=%q tags=%v", aws.ToString(desc.Name), aws.ToString(desc.Description), desc.Tags)
	}

	v1 := newVersion(t, p, arn, `{"SECRET_KEY":"one"}`)
	if !v1.Properties["secretString"].IsSecret() {
		t.Fatal("secretString in the version's state is not secret")
	}
	if got := v1.Properties["versionStages"]; !got.DeepEquals(stringsProperty([]string{"AWSCURRENT"})) {
		t.Fatalf("first version stages = %v", got)
	}
	id1 := versionIDOf(t, v1)

	// A changed document replaces the version.
	changed := pm(map[string]any{"secretId": arn})
	changed["secretString"] = secretValue(`{"SECRET_KEY":"two"}`)
	d, err := p.Diff(bg, plugin.DiffRequest{Type: versionType, OldOutputs: v1.Properties, NewInputs: changed})
	if err != nil {
		t.Fatal(err)
	}
	if k := d.DetailedDiff["secretString"].Kind; len(d.DetailedDiff) != 1 || k != plugin.DiffUpdateReplace {
		t.Fatalf("secretString change: %+v, want only an update-replace of secretString", d)
	}
	v2 := newVersion(t, p, arn, `{"SECRET_KEY":"two"}`)
	id2 := versionIDOf(t, v2)
	stages := stagesOf(t, sm, arn)
	if !hasStage(stages[id2], "AWSCURRENT") || !hasStage(stages[id1], "AWSPREVIOUS") {
		t.Fatalf("after the second version: %v (want %s AWSCURRENT, %s AWSPREVIOUS)", stages, id2, id1)
	}

	// The replaced version's delete with its state as recorded (AWSCURRENT, not refreshed)
	// removes nothing: AWSCURRENT is never removed, so the old one keeps AWSPREVIOUS.
	if _, err := p.Delete(bg, plugin.DeleteRequest{Type: versionType, ID: v1.ID, Outputs: v1.Properties}); err != nil {
		t.Fatal(err)
	}
	stages = stagesOf(t, sm, arn)
	if !hasStage(stages[id1], "AWSPREVIOUS") || !hasStage(stages[id2], "AWSCURRENT") {
		t.Fatalf("after deleting the unrefreshed old version: %v", stages)
	}

	// Refresh sees AWSPREVIOUS on the old version; its delete then removes exactly that label
	// from it, and the current version keeps AWSCURRENT.
	r, err := p.Read(bg, plugin.ReadRequest{Type: versionType, ID: v1.ID, State: v1.Properties})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Outputs["versionStages"]; !got.DeepEquals(stringsProperty([]string{"AWSPREVIOUS"})) {
		t.Fatalf("refreshed old version stages = %v", got)
	}
	if !r.Outputs["secretString"].IsSecret() {
		t.Fatal("refreshed secretString is not secret")
	}
	if _, err := p.Delete(bg, plugin.DeleteRequest{Type: versionType, ID: v1.ID, Outputs: r.Outputs}); err != nil {
		t.Fatal(err)
	}
	stages = stagesOf(t, sm, arn)
	if len(stages[id1]) != 0 || len(stages[id2]) != 1 || !hasStage(stages[id2], "AWSCURRENT") {
		t.Fatalf("after deleting the refreshed old version: %v (want %s without labels, %s AWSCURRENT only)", stages, id1, id2)
	}

	// Deleting the current version leaves AWSCURRENT where it is.
	if _, err := p.Delete(bg, plugin.DeleteRequest{Type: versionType, ID: v2.ID, Outputs: v2.Properties}); err != nil {
		t.Fatal(err)
	}
	if stages = stagesOf(t, sm, arn); !hasStage(stages[id2], "AWSCURRENT") {
		t.Fatalf("AWSCURRENT removed by a version delete: %v", stages)
	}
	cur, err := sm.GetSecretValue(bg, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil || aws.ToString(cur.SecretString) != `{"SECRET_KEY":"two"}` {
		t.Fatalf("current value after the deletes: %v", err)
	}

	// Secret delete with its recovery window: scheduled, not gone; refresh drops it.
	if _, err := p.Delete(bg, plugin.DeleteRequest{Type: secretType, ID: sec.ID, Outputs: sec.Properties}); err != nil {
		t.Fatal(err)
	}
	desc, err = sm.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatalf("DescribeSecret after a windowed delete: %v (the secret must still exist)", err)
	}
	if desc.DeletedDate == nil {
		t.Fatal("DescribeSecret shows no DeletedDate after the delete")
	}
	gone, err := p.Read(bg, plugin.ReadRequest{Type: secretType, ID: sec.ID, State: sec.Properties})
	if err != nil || gone.ID != "" || gone.Outputs != nil {
		t.Fatalf("refresh of a secret scheduled for deletion: id=%q outputs=%v err=%v (want gone)", gone.ID, gone.Outputs, err)
	}

	// Creating it again while the window runs fails, saying why and how to recover.
	_, err = p.Create(bg, plugin.CreateRequest{Type: secretType, Properties: pm(map[string]any{"name": name})})
	if err == nil || !strings.Contains(err.Error(), "scheduled for deletion") || !strings.Contains(err.Error(), "restore-secret") {
		t.Fatalf("re-create during the window: %v", err)
	}
}

func TestSecretForceDeleteWithoutRecovery(t *testing.T) {
	p := withMoto(t)
	sm, _ := awsClients(t)
	sec := mustCreate(t, p, secretType, pm(map[string]any{"name": uniqueSecretName(t), "recoveryWindowInDays": 0}))
	if _, err := p.Delete(bg, plugin.DeleteRequest{Type: secretType, ID: sec.ID, Outputs: sec.Properties}); err != nil {
		t.Fatal(err)
	}
	_, err := sm.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: aws.String(string(sec.ID))})
	var notFound *smtypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("DescribeSecret after recoveryWindowInDays=0 delete: %v, want ResourceNotFoundException", err)
	}
	// A second delete of a secret that is already gone succeeds (upstream ignores not-found).
	if _, err := p.Delete(bg, plugin.DeleteRequest{Type: secretType, ID: sec.ID, Outputs: sec.Properties}); err != nil {
		t.Fatal(err)
	}
}

func TestKmsKeyIDPassthroughAndInPlaceUpdate(t *testing.T) {
	p := withMoto(t)
	sm, km := awsClients(t)
	keys := make([]string, 2)
	for i := range keys {
		k, err := km.CreateKey(bg, &kms.CreateKeyInput{Description: aws.String("pms test key")})
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = aws.ToString(k.KeyMetadata.Arn)
	}
	sec := mustCreate(t, p, secretType, pm(map[string]any{
		"name": uniqueSecretName(t), "kmsKeyId": keys[0], "description": "before", "tags": map[string]any{"a": "1", "b": "2"},
	}))
	desc, err := sm.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: aws.String(string(sec.ID))})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(desc.KmsKeyId) != keys[0] || sec.Properties["kmsKeyId"].StringValue() != keys[0] {
		t.Fatalf("kmsKeyId: API %q, state %v, want %q", aws.ToString(desc.KmsKeyId), sec.Properties["kmsKeyId"], keys[0])
	}
	v := newVersion(t, p, string(sec.ID), "value under key 0")
	if v.ID == "" {
		t.Fatal("no version created under the customer key")
	}

	news := pm(map[string]any{
		"name": sec.Properties["name"].StringValue(), "kmsKeyId": keys[1], "description": "after",
		"tags": map[string]any{"a": "1", "c": "3"},
	})
	d, err := p.Diff(bg, plugin.DiffRequest{Type: secretType, OldOutputs: sec.Properties, NewInputs: news})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kmsKeyId", "description", "tags"} {
		if got, ok := d.DetailedDiff[k]; !ok || got.Kind.IsReplace() {
			t.Fatalf("%s change: %+v, want an in-place update", k, d.DetailedDiff)
		}
	}
	up, err := p.Update(bg, plugin.UpdateRequest{Type: secretType, ID: sec.ID, OldOutputs: sec.Properties, NewInputs: news})
	if err != nil {
		t.Fatal(err)
	}
	desc, err = sm.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: aws.String(string(sec.ID))})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tg := range desc.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if aws.ToString(desc.KmsKeyId) != keys[1] || aws.ToString(desc.Description) != "after" ||
		len(tags) != 2 || tags["a"] != "1" || tags["c"] != "3" {
		t.Fatalf("after update: kms=%q description=%q tags=%v", aws.ToString(desc.KmsKeyId), aws.ToString(desc.Description), tags)
	}
	if up.Properties["arn"].StringValue() != string(sec.ID) {
		t.Fatal("the update changed the secret's ARN")
	}
	if d2, _ := p.Diff(bg, plugin.DiffRequest{Type: secretType, OldOutputs: up.Properties, NewInputs: news}); d2.Changes != plugin.DiffNone {
		t.Fatalf("diff after update is not empty: %+v", d2)
	}
}

// The runbook's "restore the previous document": moving AWSCURRENT back to the previous
// version through versionStages is an in-place update; AWSPREVIOUS follows to the other one.
func TestMoveCurrentBackToPreviousVersion(t *testing.T) {
	p := withMoto(t)
	sm, _ := awsClients(t)
	sec := mustCreate(t, p, secretType, pm(map[string]any{"name": uniqueSecretName(t)}))
	arn := string(sec.ID)
	v1 := newVersion(t, p, arn, "first")
	v2 := newVersion(t, p, arn, "second")
	r1, err := p.Read(bg, plugin.ReadRequest{Type: versionType, ID: v1.ID, State: v1.Properties})
	if err != nil {
		t.Fatal(err)
	}
	news := pm(map[string]any{"secretId": arn, "versionStages": []any{"AWSCURRENT"}})
	news["secretString"] = secretValue("first")
	d, err := p.Diff(bg, plugin.DiffRequest{Type: versionType, OldOutputs: r1.Outputs, NewInputs: news})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.DetailedDiff["versionStages"]; len(d.DetailedDiff) != 1 || got.Kind != plugin.DiffUpdate {
		t.Fatalf("versionStages change: %+v, want only an in-place update", d.DetailedDiff)
	}
	up, err := p.Update(bg, plugin.UpdateRequest{Type: versionType, ID: v1.ID, OldOutputs: r1.Outputs, NewInputs: news})
	if err != nil {
		t.Fatal(err)
	}
	stages := stagesOf(t, sm, arn)
	id1, id2 := versionIDOf(t, v1), versionIDOf(t, v2)
	if !hasStage(stages[id1], "AWSCURRENT") || !hasStage(stages[id2], "AWSPREVIOUS") {
		t.Fatalf("after moving AWSCURRENT back: %v", stages)
	}
	if !up.Properties["versionStages"].DeepEquals(stringsProperty([]string{"AWSCURRENT"})) {
		t.Fatalf("updated state stages = %v", up.Properties["versionStages"])
	}
}

func TestErrorsNeverCarryTheSecretValue(t *testing.T) {
	p := withMoto(t)
	const value = "do-not-print-this-value-7f3a"
	in := pm(map[string]any{"secretId": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:missing-AbCdEf"})
	in["secretString"] = secretValue(value)
	_, err := p.Create(bg, plugin.CreateRequest{Type: versionType, Properties: in})
	if err == nil {
		t.Fatal("PutSecretValue to a missing secret succeeded")
	}
	if strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), "putting Secrets Manager Secret") {
		t.Fatalf("error = %v", err)
	}
}

func TestRegionOverridePerResource(t *testing.T) {
	p := withMoto(t)
	sec := mustCreate(t, p, secretType, pm(map[string]any{"name": uniqueSecretName(t), "region": "us-east-2"}))
	if !strings.HasPrefix(string(sec.ID), "arn:aws:secretsmanager:us-east-2:") || sec.Properties["region"].StringValue() != "us-east-2" {
		t.Fatalf("secret in region override: id=%s region=%v", sec.ID, sec.Properties["region"])
	}
	d, _ := p.Diff(bg, plugin.DiffRequest{Type: secretType, OldOutputs: sec.Properties,
		NewInputs: pm(map[string]any{"name": sec.Properties["name"].StringValue(), "region": "eu-west-1"})})
	if !d.DetailedDiff["region"].Kind.IsReplace() {
		t.Fatalf("region change: %+v, want replace", d.DetailedDiff)
	}
	_, _ = p.Delete(bg, plugin.DeleteRequest{Type: secretType, ID: sec.ID, Outputs: sec.Properties})
}

func TestPreviewCallsNoAWS(t *testing.T) {
	p := newProvider() // not configured: a preview must not call AWS
	resp, err := p.Create(bg, plugin.CreateRequest{Type: secretType, Preview: true,
		Properties: pm(map[string]any{"name": "pms/dev", "tags": map[string]any{"a": "b"}})})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Properties["arn"].IsComputed() || resp.Properties["recoveryWindowInDays"].NumberValue() != 30 {
		t.Fatalf("preview state = %v", resp.Properties)
	}
	in := pm(map[string]any{"secretId": "arn:x"})
	in["secretString"] = secretValue("v")
	vr, err := p.Create(bg, plugin.CreateRequest{Type: versionType, Preview: true, Properties: in})
	if err != nil {
		t.Fatal(err)
	}
	if !vr.Properties["versionId"].IsComputed() || !vr.Properties["versionStages"].IsComputed() {
		t.Fatalf("preview version state = %v", vr.Properties)
	}
}

// A resource without its own region follows aws:region; changing that replaces it.
func TestProviderRegionChangeReplaces(t *testing.T) {
	p := newProvider()
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	if _, err := p.Configure(bg, plugin.ConfigureRequest{Inputs: pm(map[string]any{"region": "us-east-1"})}); err != nil {
		t.Fatal(err)
	}
	state := pm(map[string]any{"arn": "arn:1", "name": "pms/dev", "region": "eu-west-1", "recoveryWindowInDays": 30})
	d, err := p.Diff(bg, plugin.DiffRequest{Type: secretType, OldOutputs: state, NewInputs: pm(map[string]any{"name": "pms/dev"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.DetailedDiff["region"]; len(d.DetailedDiff) != 1 || got.Kind != plugin.DiffUpdateReplace {
		t.Fatalf("aws:region eu-west-1 -> us-east-1: %+v, want a region replace", d.DetailedDiff)
	}
	state["region"] = resource.NewStringProperty("us-east-1")
	if d, _ := p.Diff(bg, plugin.DiffRequest{Type: secretType, OldOutputs: state, NewInputs: pm(map[string]any{"name": "pms/dev"})}); d.Changes != plugin.DiffNone {
		t.Fatalf("same region: %+v", d.DetailedDiff)
	}
}
