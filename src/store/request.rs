//! The one mapping of object options onto a PUT's headers, as S3 names
//! them. Both upload paths send exactly these: the direct PUT sets them
//! itself, and the SDK's `PutObject` gets them through a request mutation
//! before it signs (so its typed setters are never a second mapping).

use crate::options::ObjectOptions;

/// The headers of a PUT under object options `o`: what the bucket demands of
/// every object (encryption, ACL, owner, payer), and for an image (`image`)
/// also what describes it (storage class, caching, tags, metadata), then
/// `tag` (the content a chosen name holds), which wins over a `--metadata`
/// entry of the same name. `owner` is the expected owner of the bucket
/// written to. `None` when a value cannot be a header.
pub fn put_headers(
    o: &ObjectOptions,
    image: bool,
    owner: Option<&str>,
    tag: Option<(&str, &str)>,
) -> Option<Vec<(String, String)>> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            headers.push((name.to_string(), v.to_string()));
        }
    };
    add(
        "x-amz-server-side-encryption",
        o.sse.map(|s| s.header_value()),
    );
    add(
        "x-amz-server-side-encryption-aws-kms-key-id",
        o.sse_kms_key_id.as_deref(),
    );
    add(
        "x-amz-server-side-encryption-bucket-key-enabled",
        o.bucket_key_enabled.then_some("true"),
    );
    add("x-amz-acl", o.acl.as_deref());
    add("x-amz-expected-bucket-owner", owner);
    add(
        "x-amz-request-payer",
        o.request_payer.then_some("requester"),
    );
    if image {
        add("x-amz-storage-class", o.storage_class.as_deref());
        add("cache-control", o.cache_control.as_deref());
        add("content-disposition", o.content_disposition.as_deref());
        add("x-amz-tagging", o.tagging.as_deref());
        let tag_name = tag.map(|(name, _)| format!("x-amz-meta-{name}"));
        for (k, v) in &o.metadata {
            let name = format!("x-amz-meta-{k}");
            if tag_name.as_deref() != Some(name.as_str()) {
                headers.push((name, v.clone()));
            }
        }
        if let (Some(name), Some((_, value))) = (tag_name, tag) {
            headers.push((name, value.to_string()));
        }
    }
    let valid = |(name, value): &(String, String)| {
        http::HeaderName::try_from(name.as_str()).is_ok()
            && http::HeaderValue::from_str(value).is_ok()
    };
    headers.iter().all(valid).then_some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_options_become_the_sdks_headers() {
        let options = ObjectOptions {
            storage_class: Some("STANDARD_IA".into()),
            sse: Some(crate::options::Sse::Kms),
            sse_kms_key_id: Some("alias/k".into()),
            bucket_key_enabled: true,
            metadata: vec![
                ("batchimg-content".into(), "mine".into()),
                ("team".into(), "data".into()),
            ],
            request_payer: true,
            ..ObjectOptions::default()
        };
        let headers =
            put_headers(&options, true, None, Some(("batchimg-content", "k.jpg"))).unwrap();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(h, _)| *h == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-server-side-encryption"), Some("aws:kms"));
        assert_eq!(
            get("x-amz-server-side-encryption-aws-kms-key-id"),
            Some("alias/k")
        );
        assert_eq!(
            get("x-amz-server-side-encryption-bucket-key-enabled"),
            Some("true")
        );
        assert_eq!(get("x-amz-storage-class"), Some("STANDARD_IA"));
        assert_eq!(get("x-amz-request-payer"), Some("requester"));
        assert_eq!(get("x-amz-meta-team"), Some("data"));
        assert_eq!(get("x-amz-acl"), None);
        assert_eq!(get("x-amz-meta-batchimg-content"), Some("k.jpg"));
        // What describes an image is not sent with a CSV; what the bucket
        // demands of every object is.
        let csv = put_headers(&options, false, None, None).unwrap();
        assert!(
            csv.iter()
                .all(|(n, _)| !n.starts_with("x-amz-meta-") && n != "x-amz-storage-class")
        );
        assert!(csv.iter().any(|(n, _)| n == "x-amz-server-side-encryption"));
        let bad = ObjectOptions {
            metadata: vec![("team".into(), "line\nbreak".into())],
            ..ObjectOptions::default()
        };
        assert!(put_headers(&bad, true, None, None).is_none());
    }
}
