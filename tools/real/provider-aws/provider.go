package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"pms-secrets/tools/real/pluginkit"
)

const (
	providerName    = "aws"
	providerVersion = "7.48.0"
	secretType      = "aws:secretsmanager/secret:Secret"
	versionType     = "aws:secretsmanager/secretVersion:SecretVersion"
)

// Provider configuration keys this stand-in implements (pulumi-aws names). "version" and
// "pluginDownloadURL" are added by the engine/SDK to every provider's inputs.
var configKeys = []string{
	"region", "profile", "accessKey", "secretKey", "token", "defaultTags", "endpoints", "maxRetries",
	"sharedConfigFiles", "sharedCredentialsFiles", "skipCredentialsValidation", "skipMetadataApiCheck",
	"skipRegionValidation", "skipRequestingAccountId", "version", "pluginDownloadURL",
}

// providerConfig is the resolved provider configuration.
type providerConfig struct {
	region, profile             string
	accessKey, secretKey, token string
	defaultTags                 map[string]string
	endpoint                    string // secretsmanager endpoint override (endpoints config)
	maxRetries                  int
	sharedConfig, sharedCreds   []string
	skipCredentialsValidation   bool
}

// provider embeds pluginkit.Base (handshake, plugin info) and implements the two resources.
type provider struct {
	pluginkit.Base

	mu      sync.Mutex
	cfg     *providerConfig
	awsCfg  aws.Config
	clients map[string]*secretsmanager.Client
}

func newProvider() *provider {
	return &provider{Base: pluginkit.Base{Version: providerVersion}, clients: map[string]*secretsmanager.Client{}}
}

// GetSchema returns the part of pulumi-aws's schema this stand-in implements.
func (p *provider) GetSchema(context.Context, plugin.GetSchemaRequest) (plugin.GetSchemaResponse, error) {
	typed := func(t string) map[string]any { return map[string]any{"type": t} }
	secret := map[string]any{"type": "string", "secret": true}
	tags := map[string]any{"type": "object", "additionalProperties": typed("string")}
	stages := map[string]any{"type": "array", "items": typed("string")}
	secretIn := map[string]any{
		"description": typed("string"), "forceOverwriteReplicaSecret": typed("boolean"), "kmsKeyId": typed("string"),
		"name": typed("string"), "namePrefix": typed("string"), "policy": typed("string"),
		"recoveryWindowInDays": typed("integer"), "region": typed("string"), "tags": tags,
	}
	secretOut := map[string]any{"arn": typed("string"), "tagsAll": tags}
	for k, v := range secretIn {
		secretOut[k] = v
	}
	versionIn := map[string]any{
		"secretId": typed("string"), "secretString": secret, "secretBinary": secret, "secretStringWo": secret,
		"secretStringWoVersion": typed("integer"), "versionStages": stages, "region": typed("string"),
	}
	versionOut := map[string]any{"arn": typed("string"), "secretArn": typed("string"), "versionId": typed("string"),
		"hasSecretStringWo": typed("boolean")}
	for k, v := range versionIn {
		versionOut[k] = v
	}
	schema := map[string]any{
		"name": providerName, "version": providerVersion,
		"config": map[string]any{"variables": map[string]any{"region": typed("string")}},
		"resources": map[string]any{
			secretType:  map[string]any{"inputProperties": secretIn, "properties": secretOut},
			versionType: map[string]any{"inputProperties": versionIn, "properties": versionOut, "requiredInputs": []string{"secretId"}},
		},
	}
	b, err := json.Marshal(schema)
	return plugin.GetSchemaResponse{Schema: b}, err
}

// configValue decodes a config value: the engine passes stack config as strings (objects and
// arrays as JSON text); an explicit `new aws.Provider` passes typed values.
func configValue(v resource.PropertyValue) any {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		var decoded any
		s := v.StringValue()
		if len(s) > 0 && (s[0] == '{' || s[0] == '[') && json.Unmarshal([]byte(s), &decoded) == nil {
			return decoded
		}
		return s
	}
	return v.Mappable()
}

func asBool(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		parsed, err := strconv.ParseBool(b)
		return parsed, err == nil
	}
	return false, false
}

func asStrings(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := []string{}
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// parseConfig resolves the provider configuration and lists every problem.
func parseConfig(news resource.PropertyMap) (*providerConfig, failures) {
	var fails failures
	cfg := &providerConfig{}
	known := map[string]bool{}
	for _, k := range configKeys {
		known[k] = true
	}
	keys := make([]string, 0, len(news))
	for k := range news {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, key := range keys {
		pv := news[resource.PropertyKey(key)]
		if pv.IsNull() || pv.ContainsUnknowns() {
			continue
		}
		if !known[key] {
			fails.add(key, "aws:%s is not implemented by this stand-in provider (it implements %v); "+
				"remove it from the stack config (tools/real/provider-aws/README.md)", key, configKeys)
			continue
		}
		v := configValue(pv)
		bad := func(want string) { fails.add(key, "aws:%s must be %s, got a %s", key, want, pv.TypeString()) }
		switch key {
		case "region", "profile", "accessKey", "secretKey", "token":
			s, ok := v.(string)
			if !ok {
				bad("a string")
				continue
			}
			targets := map[string]*string{"region": &cfg.region, "profile": &cfg.profile,
				"accessKey": &cfg.accessKey, "secretKey": &cfg.secretKey, "token": &cfg.token}
			*targets[key] = s
		case "defaultTags":
			obj, ok := v.(map[string]any)
			tags, hasTags := obj["tags"].(map[string]any)
			if !ok || (obj["tags"] != nil && !hasTags) {
				bad(`an object like {"tags": {"Key": "Value"}}`)
				continue
			}
			cfg.defaultTags = map[string]string{}
			for k, tv := range tags {
				s, ok := tv.(string)
				if !ok {
					bad("an object whose tags are strings")
					break
				}
				cfg.defaultTags[k] = s
			}
		case "endpoints":
			list, ok := v.([]any)
			if !ok {
				bad(`a list like [{"secretsmanager": "http://127.0.0.1:5000"}]`)
				continue
			}
			for _, e := range list {
				m, ok := e.(map[string]any)
				if !ok {
					bad(`a list of objects like {"secretsmanager": "http://127.0.0.1:5000"}`)
					break
				}
				if s, ok := m["secretsmanager"].(string); ok && s != "" {
					cfg.endpoint = s
				}
			}
		case "maxRetries":
			switch n := v.(type) {
			case float64:
				cfg.maxRetries = int(n)
			case string:
				parsed, err := strconv.Atoi(n)
				if err != nil {
					bad("a whole number")
					continue
				}
				cfg.maxRetries = parsed
			default:
				bad("a whole number")
			}
		case "sharedConfigFiles", "sharedCredentialsFiles":
			list, ok := asStrings(v)
			if !ok {
				bad("a list of file paths")
				continue
			}
			if key == "sharedConfigFiles" {
				cfg.sharedConfig = list
			} else {
				cfg.sharedCreds = list
			}
		case "skipCredentialsValidation", "skipMetadataApiCheck", "skipRegionValidation", "skipRequestingAccountId":
			b, ok := asBool(v)
			if !ok {
				bad("true or false")
				continue
			}
			if key == "skipCredentialsValidation" {
				cfg.skipCredentialsValidation = b
			}
		}
	}
	// pulumi-aws defaults region from the environment, like the AWS CLI.
	if cfg.region == "" {
		cfg.region = os.Getenv("AWS_REGION")
	}
	if cfg.region == "" {
		cfg.region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if cfg.region == "" {
		// No property: the engine then prints upstream's familiar "resource '...' has a problem:
		// missing required configuration key" line.
		fails.add("", "missing required configuration key \"aws:region\": The region where AWS operations "+
			"will take place. Examples are us-east-1, us-west-2, etc.\n"+
			"Set a value using the command `pulumi config set aws:region <value>`.")
	}
	if (cfg.accessKey == "") != (cfg.secretKey == "") {
		fails.add("accessKey", "aws:accessKey and aws:secretKey must be set together (or neither, to use the "+
			"environment, a profile or another credential source)")
	}
	return cfg, fails
}

func (p *provider) CheckConfig(_ context.Context, req plugin.CheckConfigRequest) (plugin.CheckConfigResponse, error) {
	_, fails := parseConfig(req.News)
	return plugin.CheckConfigResponse{Properties: req.News, Failures: fails}, nil
}

// DiffConfig: a configuration change never replaces the provider (and so never replaces the
// resources it manages); resources carry their own region.
func (p *provider) DiffConfig(_ context.Context, req plugin.DiffConfigRequest) (plugin.DiffConfigResponse, error) {
	detailed := map[string]plugin.PropertyDiff{}
	for _, k := range configKeys {
		if k == "version" {
			continue
		}
		key := resource.PropertyKey(k)
		o, n := get(req.OldOutputs, key), get(req.NewInputs, key)
		if !sameInput(o, n) {
			detailed[k] = plugin.PropertyDiff{Kind: diffKind(o, n, false)}
		}
	}
	return diffResult(detailed), nil
}

func (p *provider) Configure(ctx context.Context, req plugin.ConfigureRequest) (plugin.ConfigureResponse, error) {
	cfg, fails := parseConfig(req.Inputs)
	if len(fails) > 0 {
		return plugin.ConfigureResponse{}, fmt.Errorf("invalid aws provider configuration: %s", fails[0].Reason)
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cfg.region)}
	if cfg.profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(cfg.profile))
	}
	if len(cfg.sharedConfig) > 0 {
		opts = append(opts, awsconfig.WithSharedConfigFiles(cfg.sharedConfig))
	}
	if len(cfg.sharedCreds) > 0 {
		opts = append(opts, awsconfig.WithSharedCredentialsFiles(cfg.sharedCreds))
	}
	if cfg.accessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.accessKey, cfg.secretKey, cfg.token)))
	}
	if cfg.maxRetries > 0 {
		opts = append(opts, awsconfig.WithRetryMaxAttempts(cfg.maxRetries+1))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return plugin.ConfigureResponse{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if !cfg.skipCredentialsValidation {
		// Upstream validates credentials before any resource operation; without credentials
		// every call would fail later with a less direct message.
		if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
			return plugin.ConfigureResponse{}, fmt.Errorf("unable to validate AWS credentials.\n"+
				"Details: No valid credential sources found: %w\n"+
				"Make sure you have set your AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "+
				"AWS_PROFILE, or aws:accessKey/aws:secretKey)", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg, p.awsCfg, p.clients = cfg, awsCfg, map[string]*secretsmanager.Client{}
	return plugin.ConfigureResponse{}, nil
}

// client returns the Secrets Manager client for a region ("" = the provider's). The SDK's
// default configuration honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SECRETS_MANAGER, which is
// how tests point it at moto; an aws:endpoints entry overrides both.
func (p *provider) client(region string) (*secretsmanager.Client, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg == nil {
		return nil, "", errors.New("the aws provider was not configured")
	}
	if region == "" {
		region = p.cfg.region
	}
	if c, ok := p.clients[region]; ok {
		return c, region, nil
	}
	c := secretsmanager.NewFromConfig(p.awsCfg, func(o *secretsmanager.Options) {
		o.Region = region
		if p.cfg.endpoint != "" {
			o.BaseEndpoint = aws.String(p.cfg.endpoint)
		}
	})
	p.clients[region] = c
	return c, region, nil
}

// previewRegion is the region a resource without its own will get: the provider's, when known.
func (p *provider) previewRegion() resource.PropertyValue {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg == nil {
		return unknown()
	}
	return resource.NewStringProperty(p.cfg.region)
}

func (p *provider) defaultTags() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg == nil {
		return nil
	}
	return p.cfg.defaultTags
}

func (p *provider) Check(ctx context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	switch string(req.Type) {
	case secretType:
		return checkSecret(req)
	case versionType:
		return checkVersion(req)
	}
	return plugin.CheckResponse{}, unknownType(string(req.Type))
}

func (p *provider) Diff(ctx context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	// A resource without its own region lives in the provider's: when aws:region changes, its
	// region changes, which (as in pulumi-aws 7) replaces it.
	if !get(req.NewInputs, "region").Set && str(req.OldOutputs, "region") != "" {
		if r := p.previewRegion(); r.IsString() {
			req.NewInputs = req.NewInputs.Copy()
			req.NewInputs["region"] = r
		}
	}
	switch string(req.Type) {
	case secretType:
		return diffSecret(req), nil
	case versionType:
		return diffVersion(req), nil
	}
	return plugin.DiffResult{}, unknownType(string(req.Type))
}

func (p *provider) Create(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	switch string(req.Type) {
	case secretType:
		return p.createSecret(ctx, req)
	case versionType:
		return p.createVersion(ctx, req)
	}
	return plugin.CreateResponse{}, unknownType(string(req.Type))
}

func (p *provider) Read(ctx context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	switch string(req.Type) {
	case secretType:
		return p.readSecret(ctx, req)
	case versionType:
		return p.readVersion(ctx, req)
	}
	return plugin.ReadResponse{}, unknownType(string(req.Type))
}

func (p *provider) Update(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	switch string(req.Type) {
	case secretType:
		return p.updateSecret(ctx, req)
	case versionType:
		return p.updateVersion(ctx, req)
	}
	return plugin.UpdateResponse{}, unknownType(string(req.Type))
}

func (p *provider) Delete(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	switch string(req.Type) {
	case secretType:
		return p.deleteSecret(ctx, req)
	case versionType:
		return p.deleteVersion(ctx, req)
	}
	return plugin.DeleteResponse{}, unknownType(string(req.Type))
}

func unknownType(typ string) error {
	return fmt.Errorf("resource type %s is not implemented by this stand-in aws provider (it implements only "+
		"%s and %s); see tools/real/provider-aws/README.md", typ, secretType, versionType)
}

// requestToken is a fresh idempotency token (ClientRequestToken), as upstream sends.
func requestToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading the system's random source: %v", err))
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
