//! Objects in stores: `s3://`, `gs://`, `az://` (`abfs://`), `http(s)://` URLs
//! read by byte range and written with multipart uploads, through the
//! `object_store` crate; `file://` URLs are local paths.
//!
//! Readers call in blocking: every request runs on one small I/O runtime of the
//! process and the calling task waits for it, so ops stay synchronous wherever
//! they run (a thread pool, a worker process). Credentials and endpoints come from
//! each cloud's environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and from
//! [`StorageOptions`], which travel with the ops so worker processes read with the
//! client's settings. Transient failures (5xx, throttling, cut connections) are
//! retried with backoff by the crate; permanent ones (no such object, access
//! denied) are not.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};

/// Settings for the stores a URL names, by the keys of the `object_store` crate's
/// builders (`aws_endpoint`, `aws_region`, `aws_access_key_id`,
/// `google_service_account`, `azure_storage_account_name`, ... and their short
/// forms `endpoint`, `region`, `access_key_id`); `anon=true` reads public data
/// without credentials (s3fs' name); `max_retries` (default 10) and
/// `retry_timeout` (seconds, default 180) bound the retries of transient
/// failures. They add to, and win over, the environment.
///
/// ```
/// use brisk_frame::StorageOptions;
/// let opts = StorageOptions::new()
///     .set("endpoint", "http://127.0.0.1:9000")
///     .set("region", "eu-west-1");
/// assert_eq!(opts.get("region"), Some("eu-west-1"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    /// No settings: the environment's alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `key` set to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into().to_ascii_lowercase(), value.into());
        self
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether public data is read without credentials.
    fn anonymous(&self) -> bool {
        self.get("anon").is_some_and(|v| matches!(v, "true" | "1" | "yes"))
    }
}

impl std::fmt::Debug for StorageOptions {
    /// Keys with their values, secrets left out: options are printed in graphs
    /// and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |k: &str| {
            ["secret", "key", "token", "password", "sas", "credential"]
                .iter()
                .any(|s| k.contains(s))
        };
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, if secret(k) { "***" } else { v.as_str() })))
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StorageOptions {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter().fold(Self::new(), |o, (k, v)| o.set(k, v))
    }
}

/// The URL schemes read through object stores.
const SCHEMES: &[&str] =
    &["s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "azure", "http", "https"];

/// Uploads the local file `from` to the object at `url` (with `storage` over the
/// environment): nothing is visible at `url` until the upload completes, and a
/// failed multipart upload is aborted. The error names the URL and the cause.
pub fn upload_file(
    from: &std::path::Path,
    url: &str,
    storage: &StorageOptions,
) -> crate::Result<()> {
    let fail = |e: String| crate::Error::File { path: url.to_string(), reason: e };
    Location::parse(url, storage).and_then(|l| l.upload(from)).map_err(fail)
}

/// A multipart upload in progress, taken by whoever ends it first: its writer
/// (complete or abort) or an interrupt (abort).
type Upload = Arc<Mutex<Option<Box<dyn object_store::MultipartUpload>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The multipart uploads in progress.
fn uploads() -> std::sync::MutexGuard<'static, Vec<Upload>> {
    static UPLOADS: Mutex<Vec<Upload>> = Mutex::new(Vec::new());
    lock(&UPLOADS)
}

/// Aborts every multipart upload in progress (each given 5 seconds), so the
/// store keeps none of their parts: for a signal handler, before the process
/// exits (with `brisk_core::remove_pending` for local outputs).
pub fn abort_uploads() {
    let list = std::mem::take(&mut *uploads());
    for upload in list {
        let taken = lock(&upload).take();
        if let Some(mut upload) = taken {
            let wait = std::time::Duration::from_secs(5);
            let _ = block_on(async move { tokio::time::timeout(wait, upload.abort()).await });
        }
    }
}

/// Whether `spec` is a URL (`scheme://...`) rather than a local path.
pub fn is_url(spec: &str) -> bool {
    spec.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() > 1
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The local path a `file://` URL names; `None` for any other text.
pub(crate) fn file_url_path(spec: &str) -> Option<Result<std::path::PathBuf, String>> {
    if !spec.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("file://")) {
        return None;
    }
    Some(
        url::Url::parse(spec)
            .map_err(|e| format!("not a valid file URL: {e}"))
            .and_then(|u| u.to_file_path().map_err(|()| "not a local file URL".to_string())),
    )
}

/// A store error as a person reads it: what happened, and what to do.
fn explain(e: &object_store::Error) -> String {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => {
            "no such object (or no such bucket): check the URL, and the endpoint it is read from"
                .to_string()
        }
        E::PermissionDenied { source, .. } => format!(
            "access denied: check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_* or --storage-option) ({source})"
        ),
        E::Unauthenticated { source, .. } => format!(
            "the store did not accept the credentials: check them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_* or --storage-option) ({source})"
        ),
        E::Precondition { .. } => {
            "it changed while it was being read (its ETag differs): rerun when it is complete"
                .to_string()
        }
        E::NotSupported { source } => format!("not supported by this store: {source}"),
        other => {
            // The crate's message with its causes (the status, the retries).
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                let c_text = c.to_string();
                if !text.contains(&c_text) {
                    text = format!("{text}: {c_text}");
                }
                cause = c.source();
            }
            text
        }
    }
}

/// Whether a failed request got its answer's headers but not all of its body
/// (the connection closed early): worth asking for again.
fn cut_short(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. }) && explain(e).contains("body")
}

/// The process's I/O runtime: a few threads that run the stores' requests.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("brisk-io")
            .enable_all()
            .build()
            .expect("the I/O runtime's threads cannot be started")
    })
}

/// Runs `f` on the I/O runtime and waits for it: callable from any thread,
/// inside another runtime too (the wait is a plain channel).
fn block_on<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("an object store request panicked")
}

/// A store and the object path a URL names.
#[derive(Clone)]
pub(crate) struct Location {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// `scheme://authority`, the part before the object's path.
    root: String,
    /// Whether the store can list (not a plain HTTP server).
    lists: bool,
    /// How often, and for how long, a response cut short is asked for again.
    retry: RetryConfig,
}

/// The stores made so far, by scheme, authority and settings: one client (and
/// its connection pool) per bucket.
type Stores = Mutex<HashMap<(String, StorageOptions), (Arc<dyn ObjectStore>, bool)>>;

/// Options read here, not passed to the stores' builders.
const OWN_OPTIONS: &[&str] = &["anon", "max_retries", "retry_timeout"];

/// The retries of a store: transient failures tried again with exponential
/// backoff, by default up to 10 times within 3 minutes (the crate's default; an
/// error says how many were made).
fn retry(opts: &StorageOptions) -> Result<RetryConfig, String> {
    let mut config = RetryConfig::default();
    if let Some(n) = opts.get("max_retries") {
        config.max_retries =
            n.parse().map_err(|_| format!("storage option max_retries={n}: not a count"))?;
    }
    if let Some(s) = opts.get("retry_timeout") {
        let secs: f64 = s
            .trim_end_matches('s')
            .parse()
            .map_err(|_| format!("storage option retry_timeout={s}: not a number of seconds"))?;
        config.retry_timeout = std::time::Duration::from_secs_f64(secs.max(0.0));
    }
    Ok(config)
}

impl Location {
    /// The store and path of `url`, with `opts` over the environment.
    pub(crate) fn parse(url: &str, opts: &StorageOptions) -> Result<Location, String> {
        let (scheme, rest) = url.split_once("://").ok_or("not a URL (scheme://...)")?;
        let scheme = match scheme.to_ascii_lowercase() {
            // The Google builder knows gs:// only.
            s if s == "gcs" => "gs".to_string(),
            s => s,
        };
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(format!(
                "the URL scheme {scheme}:// is not one Brisk reads (s3://, gs://, az://, abfs://, http(s)://, file://)"
            ));
        }
        let http = scheme.starts_with("http");
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(format!("the URL names no {}", if http { "host" } else { "bucket" }));
        }
        let path = if http {
            // A web URL's path is percent-encoded text; a query cannot be kept.
            let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
            if parsed.query().is_some() {
                return Err("a URL with a query (?...) cannot be read: the store reads paths only (download it first)".into());
            }
            ObjectPath::from_url_path(parsed.path())
        } else {
            // A key is taken as written: `#`, `?`, `%` and spaces are part of it.
            ObjectPath::parse(key)
        }
        .map_err(|e| format!("not a valid object path: {e}"))?;
        let root = format!("{scheme}://{authority}");
        static STORES: OnceLock<Stores> = OnceLock::new();
        let stores = STORES.get_or_init(Stores::default);
        let key = (root.clone(), opts.clone());
        let known = stores.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let (store, lists) = match known {
            Some(s) => s,
            None => {
                let made = build(&scheme, &root, opts)?;
                stores.lock().unwrap_or_else(|p| p.into_inner()).insert(key, made.clone());
                made
            }
        };
        let retry = retry(opts)?;
        Ok(Location { url: url.to_string(), root, store, path, lists, retry })
    }

    /// The URL as given.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The object's size and version (a HEAD request).
    pub(crate) fn head(&self) -> Result<ObjectMeta, String> {
        let (store, path) = (self.store.clone(), self.path.clone());
        block_on(async move { store.head(&path).await }).map_err(|e| explain(&e))
    }

    /// The URLs of the objects whose path matches `pattern` (a glob over the
    /// whole path, `*` not crossing `/`), or, without one, the objects directly
    /// under this one's "directory" (not in its subdirectories, as a local
    /// directory is read) whose name ends in one of `endings`; sorted.
    pub(crate) fn list(
        &self,
        pattern: Option<&str>,
        endings: &[&str],
    ) -> Result<Vec<String>, String> {
        if !self.lists {
            return Err(
                "a plain HTTP server cannot be listed: name each file (no globs or directories)"
                    .to_string(),
            );
        }
        let root = &self.root;
        let path = self.path.as_ref().to_string();
        // List under the part of the path before its first wildcard.
        let fixed = match pattern {
            Some(_) => {
                let cut = path.find(['*', '?', '[']).unwrap_or(path.len());
                path[..cut].rfind('/').map_or(String::new(), |i| path[..i].to_string())
            }
            None => path.clone(),
        };
        let matcher = match pattern {
            Some(_) => {
                Some(glob::Pattern::new(&path).map_err(|e| format!("bad glob pattern: {e}"))?)
            }
            None => None,
        };
        let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
        let prefix = ObjectPath::parse(&fixed).map_err(|e| format!("not a valid prefix: {e}"))?;
        let store = self.store.clone();
        let metas: Vec<ObjectMeta> = match matcher {
            Some(_) => block_on(async move { store.list(Some(&prefix)).try_collect().await }),
            None => block_on(async move {
                store.list_with_delimiter(Some(&prefix)).await.map(|l| l.objects)
            }),
        }
        .map_err(|e| explain(&e))?;
        let mut urls: Vec<String> = metas
            .into_iter()
            .map(|m| m.location.as_ref().to_string())
            .filter(|p| match &matcher {
                Some(m) => m.matches_with(p, options),
                None => {
                    let name = p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
                    endings.iter().any(|e| name.ends_with(e))
                }
            })
            .map(|p| format!("{root}/{p}"))
            .collect();
        urls.sort();
        Ok(urls)
    }

    /// The bytes `range` of the object as it was stamped (`len` bytes, `etag`):
    /// a changed object is an error, never a mix; a response cut short is asked
    /// for again within the retries, then an error.
    pub(crate) fn read(
        &self,
        range: Range<u64>,
        len: u64,
        etag: Option<&str>,
    ) -> std::io::Result<Bytes> {
        let mut got = self.read_ranges(std::slice::from_ref(&range), len, etag)?;
        Ok(got.pop().unwrap_or_default())
    }

    /// [`read`](Self::read) of each of `ranges`, requested together.
    pub(crate) fn read_ranges(
        &self,
        ranges: &[Range<u64>],
        len: u64,
        etag: Option<&str>,
    ) -> std::io::Result<Vec<Bytes>> {
        // A weak tag (W/"...") never matches If-Match: the size and the
        // modification time of each answer are checked instead.
        let strong = etag.filter(|t| !t.starts_with("W/")).map(str::to_string);
        let requests = ranges.iter().filter(|r| r.start < r.end).map(|range| {
            let (store, path) = (self.store.clone(), self.path.clone());
            let options = GetOptions {
                if_match: strong.clone(),
                range: Some(GetRange::Bounded(range.clone())),
                ..Default::default()
            };
            let want = range.end - range.start;
            let (retries, deadline) = (self.retry.max_retries, self.retry.retry_timeout);
            async move {
                let started = tokio::time::Instant::now();
                let mut tries = 0;
                loop {
                    let got = async {
                        let got = store.get_opts(&path, options.clone()).await?;
                        let size = got.meta.size;
                        Ok::<_, object_store::Error>((size, got.bytes().await?))
                    };
                    let last = tries >= retries || started.elapsed() >= deadline;
                    match got.await {
                        Ok((size, b)) if b.len() as u64 == want || last => return Ok((size, b)),
                        Err(e) if !cut_short(&e) || last => return Err(e),
                        _ => {}
                    }
                    // A body cut short: asked for again after a backoff, within
                    // the store's retries and their time.
                    tries += 1;
                    let wait = std::time::Duration::from_millis(100 << tries.min(6));
                    tokio::time::sleep(wait).await;
                }
            }
        });
        let requests: Vec<_> = requests.collect();
        let mut fetched = block_on(futures::future::try_join_all(requests))
            .map_err(|e| std::io::Error::other(explain(&e)))?
            .into_iter();
        ranges
            .iter()
            .map(|range| {
                if range.start >= range.end {
                    return Ok(Bytes::new());
                }
                let (size, got) = fetched.next().unwrap_or_default();
                if size != len {
                    return Err(std::io::Error::other(format!(
                        "it changed while it was being read: its size was {len}, now {size}; rerun when it is complete"
                    )));
                }
                Self::exact(range, got)
            })
            .collect()
    }

    /// `got` if it is all of `range`; an error if the store cut it short.
    fn exact(range: &Range<u64>, got: Bytes) -> std::io::Result<Bytes> {
        let want = range.end - range.start;
        if got.len() as u64 != want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the store answered {} bytes for the {want} bytes at {}..{}: the response was cut short",
                    got.len(),
                    range.start,
                    range.end
                ),
            ));
        }
        Ok(got)
    }

    /// Uploads the local file `from` to this object: one request up to 8 MiB,
    /// otherwise a multipart upload of 8 MiB parts (more past 80 GB), 4 in
    /// flight. Nothing is
    /// visible at the URL until the upload completes; a failed one is aborted.
    pub(crate) fn upload(&self, from: &std::path::Path) -> Result<(), String> {
        let mut file = std::fs::File::open(from)
            .map_err(|e| format!("cannot read the output written at {}: {e}", from.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        // 8 MiB parts, larger past 80 GB: a multipart upload has at most 10,000.
        let part_size = (8u64 << 20).max(len.div_ceil(10_000));
        let small = len <= 8 << 20;
        let (store, path) = (self.store.clone(), self.path.clone());
        if small {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).map_err(|e| e.to_string())?;
            return block_on(async move { store.put(&path, PutPayload::from(buf)).await })
                .map(|_| ())
                .map_err(|e| explain(&e));
        }
        let upload =
            block_on(async move { store.put_multipart(&path).await }).map_err(|e| explain(&e))?;
        // Listed while it runs, so an interrupt aborts it (`abort_uploads`).
        let shared: Upload = Arc::new(Mutex::new(Some(upload)));
        uploads().push(shared.clone());
        let sent = (|| {
            let mut pending = Vec::new();
            loop {
                let mut part = Vec::with_capacity(part_size as usize);
                (&mut file).take(part_size).read_to_end(&mut part).map_err(|e| e.to_string())?;
                if part.is_empty() {
                    break;
                }
                let next = match lock(&shared).as_mut() {
                    Some(upload) => upload.put_part(PutPayload::from(part)),
                    None => return Err("interrupted: the upload was aborted".to_string()),
                };
                // Sent at once on the I/O runtime; at most 4 in flight.
                pending.push(runtime().spawn(next));
                if pending.len() >= 4 {
                    let first = pending.remove(0);
                    block_on(first).map_err(|e| e.to_string())?.map_err(|e| explain(&e))?;
                }
            }
            for p in pending {
                block_on(p).map_err(|e| e.to_string())?.map_err(|e| explain(&e))?;
            }
            Ok::<(), String>(())
        })();
        uploads().retain(|u| !Arc::ptr_eq(u, &shared));
        let Some(mut upload) = lock(&shared).take() else {
            return Err("interrupted: the upload was aborted".to_string());
        };
        let done = match sent {
            Ok(()) => block_on(async move {
                let r = upload.complete().await;
                (r, upload)
            }),
            Err(e) => {
                let _ = block_on(async move { upload.abort().await });
                return Err(e);
            }
        };
        match done {
            (Ok(_), _) => Ok(()),
            (Err(e), mut upload) => {
                let _ = block_on(async move { upload.abort().await });
                Err(explain(&e))
            }
        }
    }

    /// Removes the object (the parts of an output that failed).
    pub(crate) fn delete(&self) -> Result<(), String> {
        let (store, path) = (self.store.clone(), self.path.clone());
        block_on(async move { store.delete(&path).await }).map_err(|e| explain(&e))
    }
}

/// The store of a URL's scheme and authority (`root`).
fn build(
    scheme: &str,
    root: &str,
    opts: &StorageOptions,
) -> Result<(Arc<dyn ObjectStore>, bool), String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    use object_store::http::HttpBuilder;
    use object_store::{ClientConfigKey, ClientOptions};
    let bad = |k: &str, e: object_store::Error| {
        format!("storage option {k}: {e}: see the object_store crate's config keys for {scheme}://")
    };
    let settings = opts.0.iter().filter(|(k, _)| !OWN_OPTIONS.contains(&k.as_str()));
    let retry = || retry(opts);
    let plain_http = |endpoint: Option<&str>| endpoint.is_some_and(|e| e.starts_with("http://"));
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(root).with_retry(retry()?);
            for (k, v) in settings {
                b = b.with_config(k.parse::<AmazonS3ConfigKey>().map_err(|e| bad(k, e))?, v);
            }
            let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
            if plain_http(endpoint.as_deref()) {
                b = b.with_allow_http(true);
            }
            if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
                b = b.with_region("us-east-1");
            }
            // Unsigned only when asked: the environment's AWS_SKIP_SIGNATURE stands.
            let b = if opts.anonymous() { b.with_skip_signature(true) } else { b };
            Arc::new(b.build().map_err(|e| explain(&e))?)
        }
        "gs" | "gcs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(root).with_retry(retry()?);
            for (k, v) in settings {
                b = b.with_config(k.parse::<GoogleConfigKey>().map_err(|e| bad(k, e))?, v);
            }
            // Unsigned only when asked: the environment's AWS_SKIP_SIGNATURE stands.
            let b = if opts.anonymous() { b.with_skip_signature(true) } else { b };
            Arc::new(b.build().map_err(|e| explain(&e))?)
        }
        "az" | "abfs" | "abfss" | "adl" | "azure" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(root).with_retry(retry()?);
            for (k, v) in settings {
                b = b.with_config(k.parse::<AzureConfigKey>().map_err(|e| bad(k, e))?, v);
            }
            // Unsigned only when asked: the environment's AWS_SKIP_SIGNATURE stands.
            let b = if opts.anonymous() { b.with_skip_signature(true) } else { b };
            Arc::new(b.build().map_err(|e| explain(&e))?)
        }
        _ => {
            let mut client = ClientOptions::new().with_allow_http(scheme == "http");
            for (k, v) in settings {
                client =
                    client.with_config(k.parse::<ClientConfigKey>().map_err(|e| bad(k, e))?, v);
            }
            let b =
                HttpBuilder::new().with_url(root).with_retry(retry()?).with_client_options(client);
            return Ok((Arc::new(b.build().map_err(|e| explain(&e))?), false));
        }
    };
    Ok((store, true))
}

/// An object read front to back through large ranged reads (a compressed
/// file's stream, a scan of a block's quoting).
pub(crate) struct ObjectReader {
    location: Location,
    /// The object's size and version when stamped.
    len: u64,
    etag: Option<String>,
    at: u64,
    end: u64,
    chunk: u64,
    buf: Bytes,
}

impl ObjectReader {
    /// Reads `location` (as it was stamped: `len` bytes, `etag`) from `at` to
    /// `end`, `chunk` bytes per request.
    pub(crate) fn new(
        location: Location,
        (len, etag): (u64, Option<String>),
        range: Range<u64>,
        chunk: u64,
    ) -> Self {
        let (at, end) = (range.start, range.end);
        ObjectReader { location, len, etag, at, end, chunk, buf: Bytes::new() }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.at >= self.end {
                return Ok(0);
            }
            let to = (self.at + self.chunk).min(self.end);
            self.buf = self.location.read(self.at..to, self.len, self.etag.as_deref())?;
            self.at = to;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(is_url("s3://bucket/a.csv"));
        assert!(is_url("https://example.com/a.csv"));
        assert!(is_url("foo://x"));
        assert!(!is_url("data/a.csv"));
        assert!(!is_url("/tmp/x://y"));
        assert!(!is_url("C:\\data\\a.csv"));
        let p = file_url_path("file:///tmp/a%20b.csv").unwrap().unwrap();
        assert_eq!(p, std::path::PathBuf::from("/tmp/a b.csv"));
        assert!(file_url_path("s3://b/k").is_none());
    }

    #[test]
    fn unknown_schemes_and_options_are_named() {
        let e = Location::parse("ftp://host/a.csv", &StorageOptions::new()).err().unwrap();
        assert!(e.contains("ftp://") && e.contains("s3://"), "{e}");
        let opts = StorageOptions::new().set("no_such_option", "1");
        let e = Location::parse("s3://bucket/a.csv", &opts).err().unwrap();
        assert!(e.contains("no_such_option"), "{e}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let opts = StorageOptions::new()
            .set("aws_secret_access_key", "hunter2")
            .set("region", "eu-west-1");
        let shown = format!("{opts:?}");
        assert!(!shown.contains("hunter2") && shown.contains("eu-west-1"), "{shown}");
    }
}
