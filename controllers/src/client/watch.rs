//! A watch response as a stream of typed events, decoded from newline-delimited JSON.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::{Error, Result, Status};

/// One event of a watch.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    /// The object's last state (at the revision of its deletion).
    Deleted(Value),
    /// Nothing changed up to this resourceVersion; `initial_events_end` marks the end of the
    /// initial state of a streaming list.
    Bookmark {
        resource_version: String,
        initial_events_end: bool,
    },
    /// The server ended the watch with this status (410 Expired: the start version is older
    /// than its history, so the caller must list again).
    Error(Status),
}

impl WatchEvent {
    fn parse(line: &[u8]) -> Result<WatchEvent, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            kind: String,
            object: Value,
        }
        let raw: Raw = serde_json::from_slice(line)?;
        Ok(match raw.kind.as_str() {
            "ADDED" => WatchEvent::Added(raw.object),
            "MODIFIED" => WatchEvent::Modified(raw.object),
            "DELETED" => WatchEvent::Deleted(raw.object),
            "BOOKMARK" => {
                let meta = raw.object.get("metadata");
                WatchEvent::Bookmark {
                    resource_version: meta
                        .and_then(|m| m.get("resourceVersion"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    initial_events_end: meta
                        .and_then(|m| m.pointer("/annotations/k8s.io~1initial-events-end"))
                        .and_then(Value::as_str)
                        == Some("true"),
                }
            }
            _ => WatchEvent::Error(serde_json::from_value(raw.object)?),
        })
    }
}

/// The events of one watch request, in order. Ends (`None`) when the server closes it.
pub struct WatchStream {
    path: String,
    body: Incoming,
    buffer: BytesMut,
    done: bool,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    pub(super) fn new(path: String, body: Incoming) -> WatchStream {
        WatchStream {
            path,
            body,
            buffer: BytesMut::new(),
            done: false,
        }
    }

    /// The next event; `None` once the server has ended the stream.
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(line) = next_line(&mut self.buffer) {
                return Some(self.decode(&line));
            }
            if self.done {
                // A final line without its newline still counts.
                let rest = self.buffer.split();
                let rest = rest.trim_ascii();
                return (!rest.is_empty()).then(|| self.decode(rest));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(source)) => {
                    self.done = true;
                    self.buffer.clear();
                    return Some(Err(Error::Http {
                        method: http::Method::GET,
                        path: self.path.clone(),
                        source,
                    }));
                }
                None => self.done = true,
            }
        }
    }

    fn decode(&self, line: &[u8]) -> Result<WatchEvent> {
        WatchEvent::parse(line).map_err(|source| Error::WatchEvent {
            path: self.path.clone(),
            line: String::from_utf8_lossy(line).chars().take(200).collect(),
            source,
        })
    }
}

/// Split the first complete non-empty line off `buffer`.
fn next_line(buffer: &mut BytesMut) -> Option<Vec<u8>> {
    loop {
        let end = buffer.iter().position(|b| *b == b'\n')?;
        let line = buffer.split_to(end);
        buffer.advance(1);
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            return Some(trimmed.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_split_across_frames() {
        let mut buffer = BytesMut::from(&b"{\"a\":1}\n\n{\"b\""[..]);
        assert_eq!(next_line(&mut buffer).unwrap(), b"{\"a\":1}");
        assert_eq!(next_line(&mut buffer), None);
        buffer.extend_from_slice(b":2}\n");
        assert_eq!(next_line(&mut buffer).unwrap(), b"{\"b\":2}");
        assert!(buffer.is_empty());
    }

    #[test]
    fn event_kinds() {
        let parse = |v: Value| WatchEvent::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(
            parse(json!({"type": "ADDED", "object": {"kind": "Pod"}})),
            WatchEvent::Added(json!({"kind": "Pod"}))
        );
        assert_eq!(
            parse(
                json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}}}})
            ),
            WatchEvent::Bookmark {
                resource_version: "12".into(),
                initial_events_end: true
            }
        );
        let WatchEvent::Error(status) = parse(
            json!({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 1 (5)"}}),
        ) else {
            panic!("not an error event");
        };
        assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    }
}
