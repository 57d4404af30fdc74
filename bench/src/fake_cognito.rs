//! A fixed-latency fake of Cognito's `AdminGetUser` for the strict-mode benchmark: the same
//! loopback server as the GraphQL endpoint ([`FixedLatencyEndpoint`]: HTTP/1.1 keep-alive,
//! `TCP_NODELAY`, a timer thread for the latency), answering the AWS JSON 1.1 protocol call
//! `X-Amz-Target: AWSCognitoIdentityProviderService.AdminGetUser` with a confirmed, enabled user
//! whose `sub` is the requested username (the bench's events use username = sub). It counts
//! the calls per username, so a run can show one call per new user and none for cached ones.
//! Signatures are not verified; a request not signed for `cognito-idp` is counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixed_endpoint::{FixedLatencyEndpoint, Reply, header, http_response};

const TARGET: &str = "AWSCognitoIdentityProviderService.AdminGetUser";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What the fake saw.
#[derive(Debug, Default)]
pub struct CognitoLog {
    /// `AdminGetUser` calls answered.
    pub admin_get_user: AtomicU64,
    /// Requests for any other operation (answered 400 UnknownOperationException).
    pub other: AtomicU64,
    /// Requests whose Authorization header was not a SigV4 signature for `cognito-idp`.
    pub unsigned: AtomicU64,
    /// Calls per username.
    pub per_user: Mutex<HashMap<String, u32>>,
}

impl CognitoLog {
    pub fn calls(&self) -> u64 {
        self.admin_get_user.load(Ordering::Relaxed)
    }

    /// Usernames looked up more than once, and the most lookups of one username.
    pub fn repeats(&self) -> (usize, u32) {
        let per_user = self.per_user.lock().unwrap();
        (
            per_user.values().filter(|&&n| n > 1).count(),
            per_user.values().copied().max().unwrap_or(0),
        )
    }
}

pub struct FakeCognito {
    pub endpoint: FixedLatencyEndpoint,
    pub log: Arc<CognitoLog>,
}

impl FakeCognito {
    pub async fn start(latency: Duration) -> Self {
        let log = Arc::new(CognitoLog::default());
        let seen = log.clone();
        let respond = move |head: &[u8], body: &[u8]| answer(&seen, head, body);
        let endpoint =
            FixedLatencyEndpoint::start_with(latency, Reply::Computed(Arc::new(respond))).await;
        Self { endpoint, log }
    }

    /// For `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.endpoint.port)
    }
}

fn answer(log: &CognitoLog, head: &[u8], body: &[u8]) -> Vec<u8> {
    let signed = header(head, "authorization").is_some_and(|a| {
        a.starts_with("AWS4-HMAC-SHA256") && a.contains("/cognito-idp/aws4_request")
    });
    if !signed {
        log.unsigned.fetch_add(1, Ordering::Relaxed);
    }
    if header(head, "x-amz-target").as_deref() != Some(TARGET) {
        log.other.fetch_add(1, Ordering::Relaxed);
        return http_response(
            "400 Bad Request",
            CONTENT_TYPE,
            r#"{"__type":"UnknownOperationException","message":"the bench's fake Cognito answers AdminGetUser only"}"#,
        );
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(username) = request["Username"].as_str() else {
        log.other.fetch_add(1, Ordering::Relaxed);
        return http_response(
            "400 Bad Request",
            CONTENT_TYPE,
            r#"{"__type":"InvalidParameterException","message":"Username is required"}"#,
        );
    };
    log.admin_get_user.fetch_add(1, Ordering::Relaxed);
    *log.per_user
        .lock()
        .unwrap()
        .entry(username.to_owned())
        .or_default() += 1;
    let user = json!({
        "Username": username,
        "UserAttributes": [{"Name": "sub", "Value": username}],
        "UserStatus": "CONFIRMED",
        "Enabled": true,
    });
    http_response("200 OK", CONTENT_TYPE, &user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_admin_get_user_with_the_requested_user_and_counts_it() {
        let log = CognitoLog::default();
        let head = b"POST / HTTP/1.1\r\nX-Amz-Target: AWSCognitoIdentityProviderService.AdminGetUser\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cognito-idp/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n";
        let body = br#"{"UserPoolId":"us-east-1_Bench0001","Username":"u-1"}"#;
        let response = String::from_utf8(answer(&log, head, body)).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        let json: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(json["Username"], "u-1");
        assert_eq!(json["UserAttributes"][0]["Value"], "u-1");
        assert_eq!(json["UserStatus"], "CONFIRMED");
        answer(&log, head, body);
        assert_eq!(log.calls(), 2);
        assert_eq!(log.repeats(), (1, 2));
        assert_eq!(log.unsigned.load(Ordering::Relaxed), 0);

        let other =
            b"POST / HTTP/1.1\r\nX-Amz-Target: AWSCognitoIdentityProviderService.ListUsers\r\n\r\n";
        let response = String::from_utf8(answer(&log, other, b"{}")).unwrap();
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        assert_eq!(log.other.load(Ordering::Relaxed), 1);
        assert_eq!(log.unsigned.load(Ordering::Relaxed), 1);
    }
}
