package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// WeedEnv names the SeaweedFS server binary for the tests that need one;
// scripts/test.sh builds it and sets it.
const WeedEnv = "PEDOS_WEED"

// Seaweed is a SeaweedFS server (master, volume, filer and S3 gateway in
// one process) on loopback, with one S3 identity: requests signed with
// another secret are refused.
type Seaweed struct {
	Endpoint string // http://127.0.0.1:PORT
	// The same gateway over TLS, with a certificate of its own that only
	// the PEM file CAFile vouches for, as a NAS's would be.
	HTTPSEndpoint, CAFile string
	AccessKey, SecretKey  string
	Client                *minio.Client

	t       testing.TB
	bin     string
	dir     string
	sockDir string
	args    []string
	ports   []int
	cmd     *exec.Cmd
	exited  chan struct{}
}

// weedBinary finds the server: $PEDOS_WEED, else the cache scripts/test.sh
// fills, else weed on PATH. Missing, it fails the test under CI and skips
// it elsewhere, as RequireTool does.
func weedBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(WeedEnv); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, ".cache", "pedos", "weed"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the SeaweedFS server is missing: set %s (scripts/test.sh builds it)", WeedEnv)
	}
	t.Skipf("the SeaweedFS server is missing; run scripts/test.sh, or set %s", WeedEnv)
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// StartSeaweed starts a server for the test and stops it when the test
// ends, whatever happens.
func StartSeaweed(t testing.TB) *Seaweed {
	t.Helper()
	s := &Seaweed{t: t, bin: weedBinary(t), dir: t.TempDir(), AccessKey: "pedos-test-key", SecretKey: "pedos-test-secret"}
	// Unix sockets must have short paths.
	sock, err := os.MkdirTemp("", "pedos-weed-")
	if err != nil {
		t.Fatal(err)
	}
	s.sockDir = sock
	t.Cleanup(func() { os.RemoveAll(sock) })
	cfg := fmt.Sprintf(`{"identities":[{"name":"pedos","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, s.AccessKey, s.SecretKey)
	cfgFile := filepath.Join(s.dir, "s3.json")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ports = freePorts(t, 9)
	p := s.ports
	certFile, keyFile := writeCertificate(t, s.dir, "127.0.0.1")
	s.CAFile = certFile
	s.HTTPSEndpoint = "https://127.0.0.1:" + strconv.Itoa(p[8])
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s.args = []string{"server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3", "-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.port.https=" + strconv.Itoa(p[8]), "-s3.cert.file=" + certFile, "-s3.key.file=" + keyFile,
		// Off: they would listen on fixed ports, which two servers share.
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-s3.config=" + cfgFile,
		"-filer.localSocket=" + filepath.Join(sock, "filer.sock"),
		"-s3.localSocket=" + filepath.Join(sock, "s3.sock"),
		"-master.volumeSizeLimitMB=256", "-volume.max=0",
	}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(p[6])
	c, err := minio.New("127.0.0.1:"+strconv.Itoa(p[6]), &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1", MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Client = c
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// writeCertificate writes a self-signed certificate for the IP address ip
// and its key into dir, in PEM files.
func writeCertificate(t testing.TB, dir, ip string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pedos test S3 gateway"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "s3-cert.pem"), filepath.Join(dir, "s3-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Start starts the server (again, after Kill or Stop: same ports, same
// data) and waits until its S3 gateway answers.
func (s *Seaweed) Start() {
	t := s.t
	t.Helper()
	// A socket left by an earlier server on one of these ports makes the
	// new one unreachable.
	for _, p := range s.ports {
		old, _ := filepath.Glob(fmt.Sprintf("/tmp/seaweedfs-*-%d.sock", p))
		for _, f := range old {
			os.Remove(f)
		}
	}
	os.Remove(filepath.Join(s.sockDir, "filer.sock"))
	os.Remove(filepath.Join(s.sockDir, "s3.sock"))
	logf, err := os.Create(filepath.Join(s.dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	logf.Close()
	s.cmd = cmd
	exited := make(chan struct{})
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.Client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "weed.log"))
			t.Fatalf("weed server exited: %s", tail(log, 2000))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "weed.log"))
			s.Kill()
			t.Fatalf("weed server not ready after 90 s (%v): %s", err, tail(log, 2000))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop stops the server: SIGTERM, then SIGKILL after a grace period (it
// may not exit on SIGTERM for a long time). It is always reaped.
func (s *Seaweed) Stop() { s.stop(10 * time.Second) }

// Kill kills the server at once, as a crash would.
func (s *Seaweed) Kill() { s.stop(0) }

func (s *Seaweed) stop(grace time.Duration) {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	if grace > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(grace):
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// MakeBucket creates a bucket.
func (s *Seaweed) MakeBucket(name string) {
	s.t.Helper()
	if err := s.Client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// WriteAWSFiles writes ~/.aws/config and ~/.aws/credentials under home,
// as a user of the AWS tools would, pointing at this server; secret is
// the secret key to write ("" for the right one).
func (s *Seaweed) WriteAWSFiles(home, secret string) {
	s.t.Helper()
	if secret == "" {
		secret = s.SecretKey
	}
	s.writeAWSConfig(home, s.Endpoint, "")
	creds := "[default]\naws_access_key_id = " + s.AccessKey + "\naws_secret_access_key = " + secret + "\n"
	if err := os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(creds), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// UseHTTPS points the AWS files under home (WriteAWSFiles) at the gateway
// over TLS, with CAFile as their CA bundle if trusted.
func (s *Seaweed) UseHTTPS(home string, trusted bool) {
	s.t.Helper()
	extra := ""
	if trusted {
		extra = "ca_bundle = " + s.CAFile + "\n"
	}
	s.writeAWSConfig(home, s.HTTPSEndpoint, extra)
}

func (s *Seaweed) writeAWSConfig(home, endpoint, extra string) {
	s.t.Helper()
	dir := filepath.Join(home, ".aws")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	cfg := "[default]\nregion = us-east-1\nendpoint_url = " + endpoint + "\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// Env is the environment that points the AWS tools (and package objstore)
// at this server.
func (s *Seaweed) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL": s.Endpoint, "AWS_ACCESS_KEY_ID": s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey, "AWS_REGION": "us-east-1",
	}
}

// Objects lists the keys of the objects in bucket under prefix.
func (s *Seaweed) Objects(bucket, prefix string) []string {
	s.t.Helper()
	var keys []string
	for o := range s.Client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			s.t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// MultipartUploads lists the uploads under way in bucket.
func (s *Seaweed) MultipartUploads(bucket string) []string {
	s.t.Helper()
	var keys []string
	for up := range s.Client.ListIncompleteUploads(context.Background(), bucket, "", true) {
		if up.Err != nil {
			s.t.Fatal(up.Err)
		}
		keys = append(keys, up.Key)
	}
	return keys
}
