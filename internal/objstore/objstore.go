// Package objstore is the S3 side of a backup kept in object storage: the
// VM-side services of package qrexec use it, never dom0 (which has no
// network). It speaks S3 through github.com/minio/minio-go/v7; there is no
// S3 protocol code here.
//
// A location is a URL: s3://BUCKET/PREFIX/ names where new backups go (a
// new object PREFIX/qubes-backup-YYYY-MM-DDTHHMMSS each, never an existing
// one), s3://BUCKET/KEY one backup.
//
// The endpoint, region and credentials come from the VM's environment and
// files, in the conventions of the AWS tools, and from nowhere else: never
// from dom0, never from the location, never in argv or logs (see Open).
package objstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"gopkg.in/ini.v1"
)

// Scheme starts every object storage location.
const Scheme = "s3://"

// IsURL reports whether a location names object storage.
func IsURL(loc string) bool { return strings.HasPrefix(loc, Scheme) }

// Location is a parsed s3:// URL.
type Location struct {
	Bucket string
	// Key is the object's key, or a prefix ("" or ending in "/").
	Key string
}

// ParseURL parses s3://BUCKET/KEY.
func ParseURL(s string) (Location, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Location{}, fmt.Errorf("%q is not an %sBUCKET/KEY URL", s, Scheme)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("%q names no bucket", s)
	}
	return Location{Bucket: bucket, Key: key}, nil
}

// IsPrefix reports whether the location names a prefix (a "directory").
func (l Location) IsPrefix() bool { return l.Key == "" || strings.HasSuffix(l.Key, "/") }

func (l Location) String() string { return Scheme + l.Bucket + "/" + l.Key }

// Store is a connection to one S3 endpoint.
type Store struct {
	core     minio.Core
	Endpoint string // for messages: scheme and host, never credentials
	// maxAttempts, when set, is how many requests in a row a Reader
	// tries before it gives up; 0: it tries for retryWindow.
	maxAttempts int
}

// secure reports whether requests go over TLS.
func (s *Store) secure() bool { return strings.HasPrefix(s.Endpoint, "https://") }

// Open connects to the endpoint the environment names, the AWS tools' way:
//   - endpoint: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else endpoint_url
//     of the profile in ~/.aws/config (AWS_CONFIG_FILE), else AWS itself;
//   - region: AWS_REGION or AWS_DEFAULT_REGION, else region of the
//     profile, else us-east-1;
//   - credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
//     AWS_SESSION_TOKEN), else the profile in ~/.aws/credentials
//     (AWS_SHARED_CREDENTIALS_FILE);
//   - the profile is AWS_PROFILE, else "default";
//   - AWS_CA_BUNDLE, else ca_bundle of the profile: a PEM file of the
//     certificate authorities an https endpoint is checked against
//     instead of the system's (a NAS with a certificate of its own);
//   - AWS_MAX_ATTEMPTS, else max_attempts of the profile: how many
//     requests in a row a Reader tries before it gives up (by default it
//     keeps trying for 90 s without progress).
//
// Nothing is contacted yet.
func Open() (*Store, error) {
	profile := os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = "default"
	}
	cfg := configProfile(profile)
	endpoint := firstSet(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"), cfg["endpoint_url"], "https://s3.amazonaws.com")
	region := firstSet(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), cfg["region"], "us-east-1")
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The value is not shown: it might hold a secret.
		return nil, errors.New("the S3 endpoint URL is not of the form http(s)://HOST[:PORT]")
	}
	tr, err := transport(u.Scheme == "https", firstSet(os.Getenv("AWS_CA_BUNDLE"), cfg["ca_bundle"]))
	if err != nil {
		return nil, err
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Profile: profile},
	})
	c, err := minio.NewCore(u.Host, &minio.Options{
		Creds:     creds,
		Secure:    u.Scheme == "https",
		Region:    region,
		Transport: tr,
		// Few retries of one request: Upload and Reader have their own
		// policies, and a plan-time check must not hang on a dead endpoint.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, err
	}
	attempts, err := strconv.Atoi(firstSet(os.Getenv("AWS_MAX_ATTEMPTS"), cfg["max_attempts"], "0"))
	if err != nil || attempts < 0 {
		return nil, errors.New("max_attempts (AWS_MAX_ATTEMPTS) is not a number of attempts")
	}
	return &Store{core: *c, Endpoint: u.Scheme + "://" + u.Host, maxAttempts: attempts}, nil
}

// transport is minio-go's own, trusting only the authorities in caBundle
// when one is named, as the AWS tools do.
func transport(secure bool, caBundle string) (*http.Transport, error) {
	t, err := minio.DefaultTransport(secure)
	if err != nil || !secure || caBundle == "" {
		return t, err
	}
	pem, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("the CA bundle (ca_bundle, AWS_CA_BUNDLE) cannot be read: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the CA bundle %s holds no PEM certificate", caBundle)
	}
	t.TLSClientConfig.RootCAs = pool
	return t, nil
}

// configProfile returns the keys of a profile of ~/.aws/config ("default",
// or "profile NAME"); nothing when there is no such file.
func configProfile(profile string) map[string]string {
	file := os.Getenv("AWS_CONFIG_FILE")
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		file = filepath.Join(home, ".aws", "config")
	}
	f, err := ini.Load(file)
	if err != nil {
		return nil
	}
	for _, name := range []string{"profile " + profile, profile} {
		if s, err := f.GetSection(name); err == nil {
			return s.KeysHash()
		}
	}
	return nil
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Kind says why an operation failed, for a plain message and a plan
// problem.
type Kind int

// The kinds of failure.
const (
	Other         Kind = iota
	NoBucket           // the bucket does not exist
	Refused            // the credentials were refused, or are missing
	Unreachable        // the endpoint did not answer
	NoSuchKey          // the object does not exist
	NameTaken          // another object took the name meanwhile
	BadLocation        // not a usable s3:// URL
	NotConfigured      // the VM's S3 configuration is unusable
	Untrusted          // the endpoint's TLS certificate is not trusted
)

var kindNames = map[Kind]string{
	Other: "other", NoBucket: "no-bucket", Refused: "refused", Unreachable: "unreachable",
	NoSuchKey: "no-such-key", NameTaken: "name-taken", BadLocation: "bad-location", NotConfigured: "not-configured",
	Untrusted: "untrusted",
}

func (k Kind) String() string { return kindNames[k] }

// ParseKind is String's inverse; Other for an unknown name.
func ParseKind(s string) Kind {
	for k, n := range kindNames {
		if n == s {
			return k
		}
	}
	return Other
}

// Error is a failure, classified.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// classify turns a client error into an *Error with plain words.
func (s *Store) classify(err error, bucket, key string) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchBucket":
		return &Error{NoBucket, fmt.Sprintf("bucket %s does not exist at %s", bucket, s.Endpoint)}
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken":
		return &Error{Refused, fmt.Sprintf("%s refused the credentials for bucket %s (%s)", s.Endpoint, bucket, resp.Code)}
	case "NoSuchKey":
		return &Error{NoSuchKey, fmt.Sprintf("%s does not exist", Location{bucket, key})}
	case "PreconditionFailed":
		return &Error{NameTaken, fmt.Sprintf("%s was created by someone else meanwhile", Location{bucket, key})}
	case "":
		var untrusted *tls.CertificateVerificationError
		if errors.As(err, &untrusted) {
			return &Error{Untrusted, fmt.Sprintf("the S3 endpoint %s has a TLS certificate this VM does not trust (%v)", s.Endpoint, untrusted.Err)}
		}
		var uerr *url.Error
		if errors.As(err, &uerr) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return &Error{Unreachable, fmt.Sprintf("the S3 endpoint %s cannot be reached: %v", s.Endpoint, uerr.Err)}
		}
		return err
	}
	return &Error{Other, fmt.Sprintf("%s: %s (%s)", s.Endpoint, resp.Message, resp.Code)}
}

// KindOf returns the kind of a failure of this package; Other otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Other
}

// Check checks, before any backup data is read, that the bucket exists and
// the credentials are accepted for it.
func (s *Store) Check(ctx context.Context, bucket string) error {
	ok, err := s.core.BucketExists(ctx, bucket)
	if err != nil {
		return s.classify(err, bucket, "")
	}
	if !ok {
		return &Error{NoBucket, fmt.Sprintf("bucket %s does not exist at %s", bucket, s.Endpoint)}
	}
	return nil
}
