use crate::support::Harness;

#[tokio::test]
async fn bearer_token_with_scope_reaches_upstream_with_identity() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = h.get("/orders/42", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["path"], "/orders/42");
    assert_eq!(
        crate::support::echoed_headers(&body, "x-auth-subject"),
        vec!["alice"]
    );
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}
