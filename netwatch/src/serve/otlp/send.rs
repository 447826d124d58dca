//! One export request over OTLP/gRPC (tonic) or OTLP/HTTP with protobuf
//! bodies (hyper's HTTP/1.1 client), and what its failure means: worth a
//! retry (the collector is down, busy or slow) or final (it refused the
//! data or our credentials, and sending it again would change nothing).

use std::{collections::VecDeque, convert::Infallible, pin::Pin, sync::Arc, task, time::Duration};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{
    body::{Frame, SizeHint},
    client::conn::http1,
    Request, StatusCode,
};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest,
};
use prost::Message as _;
use tokio::net::TcpStream;
use tonic::{codec::CompressionEncoding, metadata::MetadataMap, transport::Channel};

use super::super::config::{Compression, OtlpExport, OtlpProtocol};

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// Try again later.
    Retry(String),
    /// Drop the data: the collector will not take it.
    Rejected(String),
}

pub struct Client {
    transport: Transport,
    headers: Vec<(String, String)>,
    gzip: bool,
    timeout: Duration,
}

enum Transport {
    Grpc { logs: tonic::client::Grpc<Channel>, metrics: MetricsServiceClient<Channel> },
    Http(Http),
}

struct Http {
    base: hyper::Uri,
    tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
    conn: Option<http1::SendRequest<Body>>,
}

/// A request body in parts that follow one another (a request's head, then
/// the buffers the agent loop encoded its records into), shared with the
/// batch kept for a retry: sending copies none of them in this process
/// (over plain TCP, hyper hands them to the kernel in one `writev`).
#[derive(Clone, Debug, Default)]
pub struct Parts(pub Vec<Bytes>);

impl Parts {
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }
}

/// [`Parts`] as hyper's body: one frame a part, its exact length known
/// (a `content-length` request, not a chunked one).
pub struct Body {
    parts: VecDeque<Bytes>,
    left: u64,
}

impl From<Parts> for Body {
    fn from(p: Parts) -> Self {
        let left = p.len() as u64;
        Self { parts: p.0.into(), left }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut task::Context<'_>,
    ) -> task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let part = self.parts.pop_front();
        if let Some(b) = &part {
            self.left -= b.len() as u64;
        }
        task::Poll::Ready(part.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// A file of PEM certificates (the CA's, the client's chain), checked to
/// hold one; `what` names it in errors.
fn read_certs(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    use rustls_pki_types::{pem::PemObject as _, CertificateDer};
    let pem = std::fs::read(path).with_context(|| format!("reading the OTLP {what} file {}", path.display()))?;
    if !CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok()) {
        bail!("the OTLP {what} file {} holds no PEM certificate", path.display());
    }
    Ok(pem)
}

/// A client certificate chain and its key (mTLS), both PEM.
pub struct Identity {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// `client_cert_file` and `client_key_file`, checked to hold a PEM
/// certificate and a PEM private key. The key is a secret: errors name its
/// file, never what it holds.
pub fn read_identity(cfg: &OtlpExport) -> Result<Option<Identity>> {
    use rustls_pki_types::{pem::PemObject as _, PrivateKeyDer};
    let (cert_path, key_path) = match (&cfg.client_cert_file, &cfg.client_key_file) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => bail!("export.otlp.client_cert_file and export.otlp.client_key_file go together: set both or neither"),
    };
    let cert = read_certs(cert_path, "client certificate")?;
    let key =
        std::fs::read(key_path).with_context(|| format!("reading the OTLP client key file {}", key_path.display()))?;
    if PrivateKeyDer::from_pem_slice(&key).is_err() {
        bail!("the OTLP client key file {} holds no PEM private key", key_path.display());
    }
    Ok(Some(Identity { cert, key }))
}

/// `Name: value` lines; blank lines and `#` comments skipped. The values
/// are secrets: errors name the file and line, never the value.
pub fn read_headers(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the OTLP headers file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            bail!("{} line {}: expected `Name: value`", path.display(), i + 1);
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || hyper::header::HeaderValue::from_str(&value).is_err()
        {
            bail!("{} line {}: not a valid HTTP header name and value", path.display(), i + 1);
        }
        out.push((name, value));
    }
    Ok(out)
}

impl Client {
    pub fn new(cfg: &OtlpExport, endpoint: &str) -> Result<Self> {
        let headers = cfg.headers_file.as_deref().map(read_headers).transpose()?.unwrap_or_default();
        let ca = cfg.ca_file.as_deref().map(|p| read_certs(p, "CA")).transpose()?;
        let identity = read_identity(cfg)?;
        let uri: hyper::Uri = endpoint.parse().with_context(|| format!("export.otlp.endpoint {endpoint:?}"))?;
        let host = uri.host().context("export.otlp.endpoint has no host")?.trim_matches(['[', ']']).to_owned();
        let https = uri.scheme_str() == Some("https");
        let transport = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let mut ep = Channel::from_shared(endpoint.to_owned())
                    .with_context(|| format!("export.otlp.endpoint {endpoint:?}"))?
                    .connect_timeout(cfg.timeout)
                    .timeout(cfg.timeout);
                if let Some(pem) = &ca {
                    let mut tls = tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
                        .domain_name(host);
                    if let Some(id) = &identity {
                        tls = tls.identity(tonic::transport::Identity::from_pem(&id.cert, &id.key));
                    }
                    ep = ep.tls_config(tls).context("setting up TLS for the OTLP endpoint")?;
                }
                let channel = ep.connect_lazy();
                let (mut logs, mut metrics) =
                    (tonic::client::Grpc::new(channel.clone()), MetricsServiceClient::new(channel));
                if cfg.compression == Compression::Gzip {
                    logs = logs.send_compressed(CompressionEncoding::Gzip);
                    metrics = metrics.send_compressed(CompressionEncoding::Gzip);
                }
                Transport::Grpc { logs, metrics }
            }
            OtlpProtocol::Http => {
                let tls = match (&ca, https) {
                    (Some(pem), true) => {
                        use rustls_pki_types::pem::PemObject as _;
                        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
                        for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                            roots.add(c.context("reading the OTLP CA file")?).context("adding the OTLP CA")?;
                        }
                        // ring is the one crypto provider built in (as for tonic).
                        let builder = tokio_rustls::rustls::ClientConfig::builder().with_root_certificates(roots);
                        let config = match &identity {
                            Some(id) => {
                                use rustls_pki_types::{CertificateDer, PrivateKeyDer};
                                let chain = CertificateDer::pem_slice_iter(&id.cert)
                                    .collect::<Result<Vec<_>, _>>()
                                    .context("reading the OTLP client certificate file")?;
                                let Ok(key) = PrivateKeyDer::from_pem_slice(&id.key) else {
                                    bail!("the OTLP client key file holds no PEM private key");
                                };
                                builder
                                    .with_client_auth_cert(chain, key)
                                    .context("the OTLP client certificate and key do not go together")?
                            }
                            None => builder.with_no_client_auth(),
                        };
                        let name = rustls_pki_types::ServerName::try_from(host)
                            .context("export.otlp.endpoint's host as a TLS server name")?;
                        Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
                    }
                    _ => None,
                };
                Transport::Http(Http { base: uri, tls, conn: None })
            }
        };
        Ok(Self { transport, headers, gzip: cfg.compression == Compression::Gzip, timeout: cfg.timeout })
    }

    fn metadata(&self) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (k.parse::<tonic::metadata::AsciiMetadataKey>(), v.parse()) {
                m.insert(k, v);
            }
        }
        m
    }

    /// One encoded `ExportLogsServiceRequest` (serve/otlp/encode.rs builds
    /// them without a message in between).
    pub async fn logs(&mut self, body: Parts) -> Result<(), Failure> {
        let metadata = self.metadata();
        match &mut self.transport {
            Transport::Grpc { logs, .. } => {
                logs.ready().await.map_err(|e| Failure::Retry(format!("gRPC channel: {e}")))?;
                let r = tonic::Request::from_parts(metadata, Default::default(), body);
                let path = hyper::http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                );
                logs.unary(r, path, Raw).await.map(drop).map_err(grpc_failure)
            }
            Transport::Http(h) => h.post("v1/logs", body, &self.headers, self.gzip, self.timeout).await,
        }
    }

    pub async fn metrics(&mut self, req: ExportMetricsServiceRequest) -> Result<(), Failure> {
        let metadata = self.metadata();
        match &mut self.transport {
            Transport::Grpc { metrics, .. } => {
                let r = tonic::Request::from_parts(metadata, Default::default(), req);
                metrics.export(r).await.map(drop).map_err(grpc_failure)
            }
            Transport::Http(h) => {
                let body = Parts(vec![Bytes::from(req.encode_to_vec())]);
                h.post("v1/metrics", body, &self.headers, self.gzip, self.timeout).await
            }
        }
    }
}

/// A gRPC codec for messages already encoded: the request goes out as is,
/// the response (an empty `ExportLogsServiceResponse`, or one whose
/// `partial_success` netwatch does not act on) is skipped.
#[derive(Clone, Copy)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Parts;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Parts;
    type Error = tonic::Status;

    fn encode(&mut self, item: Parts, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.reserve(item.len());
        for part in &item.0 {
            dst.put_slice(part);
        }
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        use bytes::Buf as _;
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// The OTLP specification's retryable codes, plus UNKNOWN, which tonic
/// gives some transport errors (a connection cut mid-request); anything
/// else is final.
fn grpc_failure(s: tonic::Status) -> Failure {
    use tonic::Code;
    let text = format!("gRPC {:?}: {}", s.code(), s.message().chars().take(200).collect::<String>());
    match s.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss
        | Code::ResourceExhausted
        | Code::Unknown => Failure::Retry(text),
        _ => Failure::Rejected(text),
    }
}

impl Http {
    async fn connect(&mut self) -> Result<&mut http1::SendRequest<Body>, Failure> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            let host = self.base.host().unwrap_or_default().trim_matches(['[', ']']);
            let port = self.base.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
            let tcp = TcpStream::connect((host, port))
                .await
                .map_err(|e| Failure::Retry(format!("connecting to {host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let sender = match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| Failure::Retry(format!("TLS with {host}:{port}: {e}")))?;
                    handshake(TokioIo::new(tls)).await?
                }
                None => handshake(TokioIo::new(tcp)).await?,
            };
            self.conn = Some(sender);
        }
        self.conn.as_mut().ok_or_else(|| Failure::Retry("no connection".to_owned()))
    }

    async fn post(
        &mut self,
        path: &str,
        // Shared with the batch kept for a retry: sent without a copy.
        body: Parts,
        headers: &[(String, String)],
        gzip: bool,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let prefix = self.base.path().trim_end_matches('/');
        let uri = format!("{prefix}/{path}");
        let authority = self.base.authority().map(ToString::to_string).unwrap_or_default();
        let mut req = Request::post(uri)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf");
        let body = if gzip {
            req = req.header(hyper::header::CONTENT_ENCODING, "gzip");
            Parts(vec![Bytes::from(gzip_bytes(&body))])
        } else {
            body
        };
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Body::from(body)).map_err(|e| Failure::Rejected(format!("request: {e}")))?;
        let attempt = async {
            let conn = self.connect().await?;
            let resp = conn.send_request(req).await.map_err(|e| Failure::Retry(format!("HTTP: {e}")))?;
            let status = resp.status();
            // Read the body so that the connection can carry the next request.
            let _ = resp.into_body().collect().await;
            Ok(status)
        };
        let status = tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(Failure::Retry(format!("no answer within {timeout:?}"))))
            .inspect_err(|_| self.conn = None)?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Err(Failure::Retry(format!("HTTP {status}"))),
            s => Err(Failure::Rejected(format!("HTTP {s}"))),
        }
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<http1::SendRequest<Body>, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await.map_err(|e| Failure::Retry(format!("HTTP handshake: {e}")))?;
    tokio::spawn(async move {
        // Ends when the collector closes the connection; the next request reconnects.
        let _ = conn.await;
    });
    Ok(sender)
}

fn gzip_bytes(data: &Parts) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::fast());
    for part in &data.0 {
        // Writing into a Vec cannot fail.
        let _ = e.write_all(part);
    }
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_file_lines_and_errors_without_the_secret() {
        let dir = std::env::temp_dir().join(format!("nw-otlp-headers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("headers");
        std::fs::write(&path, "# token\n\nAuthorization: Bearer abc:def\nX-Scope-OrgID:  team-a \n").unwrap();
        let h = read_headers(&path).unwrap();
        assert_eq!(
            h,
            [
                ("authorization".to_owned(), "Bearer abc:def".to_owned()),
                ("x-scope-orgid".to_owned(), "team-a".to_owned())
            ]
        );
        std::fs::write(&path, "Authorization Bearer hunter2\n").unwrap();
        let e = format!("{:#}", read_headers(&path).unwrap_err());
        assert!(e.contains("line 1") && !e.contains("hunter2"), "{e}");
        std::fs::write(&path, "Authorization: Bearer hunter2\u{7f}\n").unwrap();
        let e = format!("{:#}", read_headers(&path).unwrap_err());
        assert!(!e.contains("hunter2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn client_identity_both_or_neither_and_errors_without_the_key() {
        let dir = std::env::temp_dir().join(format!("nw-otlp-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, "no certificate here\n").unwrap();
        // A key file that is no PEM key (a pasted secret): its text is never shown.
        std::fs::write(&key, "hunter2\n").unwrap();
        let cfg = |c: Option<&std::path::Path>, k: Option<&std::path::Path>| OtlpExport {
            client_cert_file: c.map(ToOwned::to_owned),
            client_key_file: k.map(ToOwned::to_owned),
            ..OtlpExport::default()
        };
        assert!(read_identity(&cfg(None, None)).unwrap().is_none());
        let e = format!("{:#}", read_identity(&cfg(Some(&cert), None)).err().unwrap());
        assert!(e.contains("both or neither"), "{e}");
        let e = format!("{:#}", read_identity(&cfg(Some(&cert), Some(&key))).err().unwrap());
        assert!(e.contains("no PEM certificate") && e.contains("c.pem"), "{e}");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = format!("{:#}", read_identity(&cfg(Some(&cert), Some(&key))).err().unwrap());
        assert!(e.contains("k.pem") && !e.contains("hunter2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retryable_grpc_codes() {
        assert!(matches!(grpc_failure(tonic::Status::unavailable("x")), Failure::Retry(_)));
        assert!(matches!(grpc_failure(tonic::Status::resource_exhausted("x")), Failure::Retry(_)));
        assert!(matches!(grpc_failure(tonic::Status::unauthenticated("x")), Failure::Rejected(_)));
        assert!(matches!(grpc_failure(tonic::Status::invalid_argument("x")), Failure::Rejected(_)));
    }
}
