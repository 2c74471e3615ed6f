//! Helpers for the end-to-end tests: locating the real `k1s` binary and running a server on a temp data dir.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `k1s` binary under test: `$K1S_BIN`, or the one built next to this test binary
/// (`target/<profile>/k1s`; the test command builds it first).
pub fn k1s_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("K1S_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("k1s");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin k1s` first (the test command does)",
        bin.display()
    );
    bin
}

pub fn k1s() -> Command {
    Command::new(k1s_bin())
}

/// A running `k1s server`, killed (and its log printed) when dropped.
pub struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Start `k1s server` with `args` on `data_dir` and wait until its store is ready.
    pub fn start(data_dir: PathBuf, args: &[&str]) -> anyhow::Result<Server> {
        let log = data_dir.with_extension("log");
        let child = k1s()
            .arg("server")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--https-listen-port", "0", "--disable-agent"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let server = Server {
            child,
            data_dir,
            log,
        };
        server.wait_for_log("k1s server running", Duration::from_secs(30))?;
        // Without controllers nothing publishes the root CA.
        if !args.contains(&"--disable-controller-manager") {
            server.wait_for_root_ca()?;
        }
        Ok(server)
    }

    /// Wait until the root CA publisher has put `kube-root-ca.crt` into the four initial
    /// namespaces, so that every test starts from the settled cluster a user would meet.
    fn wait_for_root_ca(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.curl_with(
                "GET",
                "application/json",
                "/api/v1/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt",
                "",
            );
            if body.matches(r#""name":"kube-root-ca.crt""#).count() >= 4 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the initial namespaces never got kube-root-ca.crt: {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig.yaml")
    }

    /// `https://<host>:<port>` as the server wrote it into its kubeconfig.
    pub fn url(&self) -> String {
        let kubeconfig = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
        kubeconfig
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("server:"))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    }

    /// Send `body` with `content_type` to `path` as the admin (curl with the cluster CA and the
    /// admin certificate), for requests kubectl has no verb for. Returns the body, a newline and
    /// the HTTP status code.
    pub fn curl(&self, content_type: &str, path: &str, body: &str) -> String {
        self.curl_with("POST", content_type, path, body)
    }

    /// [`Server::curl`] with another method (PUT, PATCH, DELETE).
    pub fn curl_with(&self, method: &str, content_type: &str, path: &str, body: &str) -> String {
        use std::io::Write;
        let tls = self.data_dir.join("tls");
        // The body goes through stdin: an argument is limited to 128 KiB.
        let mut child = Command::new("curl")
            .args([
                "-sS",
                "-X",
                method,
                "-w",
                "\n%{http_code}",
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                "@-",
            ])
            .arg("--cacert")
            .arg(tls.join("ca.crt"))
            .arg("--cert")
            .arg(tls.join("admin.crt"))
            .arg("--key")
            .arg(tls.join("admin.key"))
            .arg(format!("{}{path}", self.url()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running curl");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(body.as_bytes())
                .expect("writing curl's input");
        }
        let out = child.wait_with_output().expect("running curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The real kubectl against this server, with its own discovery cache.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.data_dir.with_extension("kube-cache"));
        cmd
    }

    /// Run kubectl with `args`; its stdout on success, an error with both streams otherwise.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl().args(args).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        Ok(stdout)
    }

    /// Run kubectl expecting failure; its stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl().args(args).output()?;
        anyhow::ensure!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("server log never showed {needle:?}:\n{}", self.log())
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("--- k1s server log ({status}) ---\n{}", self.log());
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                anyhow::bail!("server did not exit after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if std::thread::panicking() {
                eprintln!("--- k1s server log ---\n{}", self.log());
            }
        }
    }
}
