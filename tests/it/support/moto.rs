//! moto's S3 server (installed by `scripts/setup-moto.sh`), for what s3s-fs
//! does not keep: storage class, encryption, ACLs, Cache-Control, metadata
//! and tags, all stored and returned as AWS does. It accepts any key pair.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::Client;

pub struct MotoServer {
    pub endpoint: String,
    pub bucket: String,
    child: tokio::process::Child,
}

impl MotoServer {
    pub async fn start() -> MotoServer {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/moto/bin/moto_server");
        assert!(
            binary.exists(),
            "{} is missing: run `make test` (or scripts/setup-moto.sh)",
            binary.display()
        );
        // moto cannot report a port it picked, so take a free one.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let server = MotoServer {
            endpoint,
            bucket: "batchimg-moto".into(),
            child,
        };
        server
            .client()
            .await
            .create_bucket()
            .bucket(&server.bucket)
            .send()
            .await
            .expect("create the moto bucket");
        server
    }

    /// An SDK client for reading back what batchimg stored.
    pub async fn client(&self) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(batchimg::tls::sdk_http_client())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "moto", "moto", None, None, "test",
            ))
            .endpoint_url(&self.endpoint)
            .load()
            .await;
        Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        )
    }

    /// What HeadObject says of `key`.
    pub async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.client()
            .await
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap()
    }

    /// Image keys in the bucket (URL index objects and CSVs left out).
    pub async fn image_keys(&self) -> Vec<String> {
        let out = self
            .client()
            .await
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .filter(|k| !k.contains(".batchimg/") && !k.ends_with(".csv"))
            .collect();
        keys.sort();
        keys
    }

    /// Points a batchimg command at this server instead of s3s-fs.
    pub fn configure(&self, cmd: &mut tokio::process::Command) {
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("S3_BUCKET", &self.bucket)
            .env("AWS_ACCESS_KEY_ID", "moto")
            .env("AWS_SECRET_ACCESS_KEY", "moto");
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
