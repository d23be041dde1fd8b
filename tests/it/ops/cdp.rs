//! A small Chrome DevTools Protocol client: starts headless Chromium with a
//! fresh profile and drives one page over its WebSocket. Just what the
//! dashboard test needs: navigate, evaluate, set a file input, screenshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where Debian's chromium package puts the browser, if it is installed.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A headless Chromium; killed when dropped.
pub struct Browser {
    child: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `binary` headless on a blank page, with a DevTools port the
    /// browser picks (and writes into its profile folder).
    pub async fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let port_file = profile.path().join("DevToolsActivePort");
        let mut port = None;
        for _ in 0..300 {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(p) = text.lines().next().and_then(|l| l.trim().parse().ok())
            {
                port = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Browser {
            child,
            port: port.expect("chromium opens its DevTools port within 30 s"),
            _profile: profile,
        }
    }

    /// The first page's connection.
    pub async fn page(&self) -> Page {
        let list: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut page = Page { socket, next_id: 0 };
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await
        .unwrap();
        page
    }

    /// Stops the browser.
    pub async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

/// One page, driven over the protocol.
pub struct Page {
    socket: Socket,
    next_id: u64,
}

impl Page {
    /// Calls `method` and waits for its answer (events in between are
    /// dropped).
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(message) = self.socket.next().await {
                let message = message.map_err(|e| e.to_string())?;
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if value["id"] == id {
                    return Ok(value);
                }
            }
            Err("the browser closed the connection".to_string())
        })
        .await
        .map_err(|_| format!("{method}: no answer in 30 s"))??;
        match answer.get("error") {
            Some(error) => Err(format!("{method}: {error}")),
            None => Ok(answer["result"].clone()),
        }
    }

    /// Loads `url`.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}))
            .await
            .unwrap();
        self.wait_for("document.readyState === 'complete'", 30)
            .await;
    }

    /// Evaluates `expression` in the page (awaiting a promise); answers its
    /// value as JSON.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(format!("{expression}: {details}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Evaluates `expression` until it is truthy; answers that value, or
    /// panics after `secs` with the page's text.
    pub async fn wait_for(&mut self, expression: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let value = self.eval(expression).await.unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                panic!("{expression} did not hold in {secs} s; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Puts `file` in the file input that `selector` finds.
    pub async fn set_file(&mut self, selector: &str, file: &Path) {
        let document = self
            .call("DOM.getDocument", json!({"depth": 0}))
            .await
            .unwrap();
        let root = document["root"]["nodeId"].clone();
        let found = self
            .call(
                "DOM.querySelector",
                json!({"nodeId": root, "selector": selector}),
            )
            .await
            .unwrap();
        assert_ne!(found["nodeId"], 0, "no {selector}");
        self.call(
            "DOM.setFileInputFiles",
            json!({"nodeId": found["nodeId"], "files": [file.to_str().unwrap()]}),
        )
        .await
        .unwrap();
    }

    /// Writes a PNG of the page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await
            .unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}
