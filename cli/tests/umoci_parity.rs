//! umoci parity for bundles and layouts (issue 19): the runtime config of `unpack --bundle` and
//! `runtime-config` against `umoci unpack`'s, and `runc run` of a hoist bundle.

mod common;

use std::path::Path;

use common::{hoist, require_tool, run_ok, sh};
use serde_json::Value;

/// Builds, with umoci, `layout:tag` holding `/etc/passwd`, `/etc/group` and `/usr/bin/id` (with its
/// libraries, so runc can run it), a user with supplementary groups, volumes, ports, a HOME in the
/// environment that /etc/passwd overrides, a label and a stop signal.
fn build_user_image(layout: &Path, tag: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let (l, w) = (layout.display(), work.path().display());
    run_ok(&mut sh(&format!(
        r#"
        umoci init --layout "{l}"
        umoci new --image "{l}:{tag}"
        umoci unpack --image "{l}:{tag}" "{w}/b" >/dev/null
        R="{w}/b/rootfs"
        mkdir -p "$R/etc" "$R/usr/bin" "$R/lib64"
        printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n' > "$R/etc/passwd"
        printf 'root:x:0:\napp:x:1001:\nwheel:x:10:app,root\naudio:x:29:app\nother:x:30:root\n' > "$R/etc/group"
        cp -L /usr/bin/id "$R/usr/bin/id"
        for lib in $(ldd /usr/bin/id | grep -o '/[^ ]*'); do mkdir -p "$R$(dirname $lib)"; cp -L "$lib" "$R$lib"; done
        umoci repack --image "{l}:{tag}" "{w}/b"
        umoci config --image "{l}:{tag}" --os linux --architecture amd64 --config.user app \
            --config.cmd /usr/bin/id --config.volume /data --config.volume /var/log \
            --config.exposedports 80/tcp --config.exposedports 53/udp --config.env HOME=/wrong \
            --config.env GREETING=hi --config.label org.example=yes --config.stopsignal SIGTERM \
            --config.workingdir /srv --author tests
        "#
    )));
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

/// The environment as a sorted list.
fn env(v: &Value) -> Vec<String> {
    let mut e: Vec<String> = serde_json::from_value(v["process"]["env"].clone()).expect("env");
    e.sort();
    e
}

/// The image-derived mounts (tmpfs from `none`), by destination.
fn volume_mounts(v: &Value) -> Vec<Value> {
    let mut m: Vec<Value> = v["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|m| m["source"] == "none")
        .cloned()
        .collect();
    m.sort_by_key(|m| m["destination"].to_string());
    m
}

#[test]
fn runtime_config_matches_umoci() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let image = format!("{}:t", layout.display());
    let umoci = t.path().join("umoci");
    run_ok(std::process::Command::new("umoci").args([
        "unpack",
        "--image",
        &image,
        &umoci.display().to_string(),
    ]));
    let bundle = t.path().join("hoist");
    let oci = format!("oci:{image}");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &oci,
        &bundle.display().to_string(),
    ]));
    let u = read_json(&umoci.join("config.json"));
    let h = read_json(&bundle.join("config.json"));

    assert_eq!(h["process"]["user"], u["process"]["user"]);
    assert_eq!(
        h["process"]["user"]["additionalGids"],
        serde_json::json!([10, 29])
    );
    assert_eq!(env(&h), env(&u));
    assert!(
        env(&h).contains(&"HOME=/home/app".to_string()),
        "{:?}",
        env(&h)
    );
    for field in ["args", "cwd", "terminal"] {
        assert_eq!(h["process"][field], u["process"][field], "process.{field}");
    }
    assert_eq!(volume_mounts(&h), volume_mounts(&u));
    assert_eq!(volume_mounts(&h).len(), 2);
    // The device cgroup denies every device first, as umoci's (runc spec's) does.
    assert_eq!(
        h["linux"]["resources"]["devices"],
        u["linux"]["resources"]["devices"]
    );
    assert_eq!(
        h["linux"]["resources"]["devices"],
        serde_json::json!([{"allow": false, "access": "rwm"}])
    );
    // Every annotation umoci writes with a value, hoist writes the same (hoist leaves out empty ones).
    for (k, v) in u["annotations"].as_object().expect("annotations") {
        if v != "" {
            assert_eq!(&h["annotations"][k], v, "annotation {k}");
        }
    }
    assert_eq!(
        h["annotations"]["org.opencontainers.image.exposedPorts"],
        "53/udp,80/tcp"
    );

    // runtime-config writes the same file without unpacking: to stdout, and to a FILE.
    let out = run_ok(&mut hoist(&["runtime-config", &oci]));
    assert_eq!(
        out.as_bytes(),
        std::fs::read(bundle.join("config.json")).unwrap()
    );
    let file = t.path().join("config.json");
    run_ok(&mut hoist(&[
        "runtime-config",
        &oci,
        &file.display().to_string(),
    ]));
    assert_eq!(read_json(&file), h);
    // The rootless variant too: the same file as a rootless bundle's.
    let rootless = t.path().join("rootless");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        "--bundle",
        &oci,
        &rootless.display().to_string(),
    ]));
    let out = run_ok(&mut hoist(&["runtime-config", "--rootless", &oci]));
    assert_eq!(
        out.as_bytes(),
        std::fs::read(rootless.join("config.json")).unwrap()
    );
    assert!(out.contains("\"user\""), "{out}");
}

#[test]
fn runtime_config_follows_the_layers() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display();
    let w = t.path().display();
    // A second layer replaces /etc/passwd (app's home moves, its uid changes) and deletes /etc/group.
    run_ok(&mut sh(&format!(
        r#"
        umoci unpack --image "{l}:t" "{w}/b" >/dev/null
        printf 'app:x:2000:2001::/srv/app:/bin/sh\n' > "{w}/b/rootfs/etc/passwd"
        rm "{w}/b/rootfs/etc/group"
        umoci repack --image "{l}:t" "{w}/b"
        "#
    )));
    let out = run_ok(&mut hoist(&["runtime-config", &format!("oci:{l}:t")]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["process"]["user"],
        serde_json::json!({"uid": 2000, "gid": 2001})
    );
    assert!(env(&v).contains(&"HOME=/srv/app".to_string()));
    // A user the image's (new) passwd does not hold is an error naming it.
    run_ok(&mut sh(&format!(
        r#"umoci config --image "{l}:t" --config.user nobody-here"#
    )));
    let fail = common::run_fail(&mut hoist(&["runtime-config", &format!("oci:{l}:t")]));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("nobody-here"));
}

#[test]
fn runtime_config_follows_a_symlinked_user_database_as_unpack_and_umoci_do() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display();
    let w = t.path().display();
    // As nix-built and some distroless images do: the files live elsewhere, /etc holds symlinks.
    // Layer 2 moves the database under /usr/lib/db (app's uid and home change), with /etc/passwd a
    // relative symlink to it; layer 3 makes /etc/group an absolute one; layer 4 leaves them be.
    run_ok(&mut sh(&format!(
        r#"
        umoci unpack --image "{l}:t" "{w}/b" >/dev/null
        R="{w}/b/rootfs"
        mkdir -p "$R/usr/lib/db"
        printf 'root:x:0:0:root:/root:/bin/sh\napp:x:3000:3001::/srv/linked:/bin/sh\n' > "$R/usr/lib/db/passwd"
        printf 'root:x:0:\napp:x:3001:\nlinked:x:77:app\n' > "$R/usr/lib/db/group"
        rm "$R/etc/passwd"
        ln -s ../usr/lib/db/passwd "$R/etc/passwd"
        umoci repack --image "{l}:t" "{w}/b"
        rm -rf "{w}/b"
        umoci unpack --image "{l}:t" "{w}/b" >/dev/null
        rm "{w}/b/rootfs/etc/group"
        ln -s /usr/lib/db/group "{w}/b/rootfs/etc/group"
        umoci repack --image "{l}:t" "{w}/b"
        rm -rf "{w}/b"
        umoci unpack --image "{l}:t" "{w}/b" >/dev/null
        echo x > "{w}/b/rootfs/top"
        umoci repack --image "{l}:t" "{w}/b"
        "#
    )));
    let umoci = t.path().join("umoci");
    run_ok(std::process::Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{l}:t"),
        &umoci.display().to_string(),
    ]));
    let u = read_json(&umoci.join("config.json"));
    let oci = format!("oci:{l}:t");
    let bundle = t.path().join("hoist");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &oci,
        &bundle.display().to_string(),
    ]));
    let h = read_json(&bundle.join("config.json"));
    let r: Value = serde_json::from_str(&run_ok(&mut hoist(&["runtime-config", &oci]))).unwrap();
    // umoci follows the relative /etc/passwd symlink inside the rootfs, as hoist does; it resolves
    // the absolute /etc/group one against the host (where /usr/lib/db/group is absent) and so finds
    // no supplementary group, where hoist resolves it inside the root as runc does.
    assert_eq!(
        u["process"]["user"],
        serde_json::json!({"uid": 3000, "gid": 3001})
    );
    let expected = serde_json::json!({"uid": 3000, "gid": 3001, "additionalGids": [77]});
    assert_eq!(h["process"]["user"], expected, "unpack --bundle");
    assert_eq!(r["process"]["user"], expected, "runtime-config");
    assert_eq!(env(&h), env(&u));
    assert!(
        env(&r).contains(&"HOME=/srv/linked".to_string()),
        "{:?}",
        env(&r)
    );
    assert_eq!(r, h, "runtime-config writes what unpack --bundle writes");
}

/// Where Debian's `golang-github-opencontainers-specs-dev` installs the runtime-spec JSON schemas.
const RUNTIME_SCHEMA_DIR: &str =
    "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema";

/// Validates each file against the runtime-spec's `config-schema.json` (draft 4; its `$ref`s to the
/// sibling `defs*.json` and `config-linux.json` resolved from the schema directory) with python3's
/// jsonschema. Returns the validator's messages, one line per error (empty when all are valid).
fn runtime_schema_errors(files: &[&Path]) -> String {
    const VALIDATE: &str = r#"
import json, pathlib, sys, warnings
warnings.simplefilter("ignore")
import jsonschema
d = pathlib.Path(sys.argv[1]).resolve()
schema = json.loads((d / "config-schema.json").read_text())
resolver = jsonschema.RefResolver(base_uri=d.as_uri() + "/", referrer=schema)
v = jsonschema.Draft4Validator(schema, resolver=resolver)
for f in sys.argv[2:]:
    for e in sorted(v.iter_errors(json.loads(pathlib.Path(f).read_text())), key=lambda e: list(map(str, e.absolute_path))):
        print(f"{f}: at /{'/'.join(map(str, e.absolute_path))}: {e.message}")
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", VALIDATE, RUNTIME_SCHEMA_DIR]);
    cmd.args(files);
    run_ok(&mut cmd)
}

/// True when the schema check can run (python3 with jsonschema, and the schemas); under CI=true
/// their absence fails the test.
fn require_runtime_schema() -> bool {
    if !require_tool("python3") {
        return false;
    }
    let jsonschema = std::process::Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    let found = jsonschema
        && Path::new(RUNTIME_SCHEMA_DIR)
            .join("config-schema.json")
            .is_file();
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "python3-jsonschema and golang-github-opencontainers-specs-dev are required under \
                 CI=true (.ci/run installs them)"
            );
        }
        eprintln!("SKIPPED: python3-jsonschema or the runtime-spec schemas are not installed");
    }
    found
}

#[test]
fn every_runtime_config_passes_the_runtime_spec_schema() {
    if !require_tool("umoci") || !require_runtime_schema() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display();
    // Variants: an explicit group, root by number, no user and no command, a bare config.
    run_ok(&mut sh(&format!(
        r#"
        umoci config --image "{l}:t" --config.user 1000:wheel --tag group
        umoci config --image "{l}:t" --config.user 0 --config.workingdir ../../x --tag root
        umoci config --image "{l}:t" --config.user '' --clear config.cmd --clear config.volume \
            --clear config.exposedports --tag nocmd
        umoci new --image "{l}:bare"
        "#
    )));
    let mut files = Vec::new();
    for tag in ["t", "group", "root", "nocmd", "bare"] {
        let oci = format!("oci:{l}:{tag}");
        for rootless in [false, true] {
            let kind = if rootless { "rootless" } else { "root" };
            let bundle = t.path().join(format!("b-{tag}-{kind}"));
            let b = bundle.display().to_string();
            let mut args = vec!["unpack", "-q", "--bundle", &oci, &b];
            if rootless {
                args.insert(1, "--rootless");
            }
            run_ok(&mut hoist(&args));
            files.push(bundle.join("config.json"));
            let file = t.path().join(format!("rc-{tag}-{kind}.json"));
            let f = file.display().to_string();
            let rootfs = bundle.join("rootfs").display().to_string();
            let mut args = vec!["runtime-config", &oci, &f];
            if rootless {
                args.insert(1, "--rootless");
            }
            run_ok(&mut hoist(&args));
            files.push(file);
            let file = t.path().join(format!("rcfs-{tag}-{kind}.json"));
            let f = file.display().to_string();
            let mut args = vec!["runtime-config", "--rootfs", &rootfs, &oci, &f];
            if rootless {
                args.insert(1, "--rootless");
            }
            run_ok(&mut hoist(&args));
            files.push(file);
        }
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let errors = runtime_schema_errors(&refs);
    assert!(errors.is_empty(), "runtime-spec schema:\n{errors}");
    // The check is not vacuous: a broken copy fails it, with the validator's message.
    let mut v = read_json(&files[0]);
    v["process"]["user"]["uid"] = "root".into();
    let bad = t.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
    let errors = runtime_schema_errors(&[&bad]);
    assert!(errors.contains("/process/user/uid"), "{errors}");
}

/// The digests of the layers of `layout:tag`, bottom first, as blob paths.
fn layer_blobs(layout: &Path, tag: &str) -> Vec<std::path::PathBuf> {
    let (manifest, _) = manifest_and_config(layout, tag);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            layout
                .join("blobs/sha256")
                .join(d["digest"].as_str().unwrap().trim_start_matches("sha256:"))
        })
        .collect()
}

/// Overwrites a blob's first bytes, keeping its size (so only its digest betrays it).
fn damage_blob(blob: &Path) {
    use std::io::{Seek, Write};
    let mut perm = std::fs::metadata(blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(blob, perm).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(blob).unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(b"damaged!").unwrap();
}

#[test]
fn runtime_config_rootfs_matches_umoci_and_reads_no_layer() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display();
    run_ok(&mut sh(&format!(
        r#"umoci config --image "{l}:t" --config.user '' --tag empty"#
    )));
    let umoci = t.path().join("umoci");
    common::umoci_unpack(&format!("{l}:t"), &umoci);
    let rootfs = umoci.join("rootfs").display().to_string();
    for tag in ["t", "empty"] {
        let u = t.path().join(format!("u-{tag}.json"));
        run_ok(std::process::Command::new("umoci").args([
            "raw",
            "runtime-config",
            "--image",
            &format!("{l}:{tag}"),
            "--rootfs",
            &rootfs,
            &u.display().to_string(),
        ]));
        let u = read_json(&u);
        let oci = format!("oci:{l}:{tag}");
        // From umoci's rootfs, and from the layers: both as umoci's.
        let from_rootfs: Value = serde_json::from_str(&run_ok(&mut hoist(&[
            "runtime-config",
            "--rootfs",
            &rootfs,
            &oci,
        ])))
        .unwrap();
        let from_layers: Value =
            serde_json::from_str(&run_ok(&mut hoist(&["runtime-config", &oci]))).unwrap();
        for h in [&from_rootfs, &from_layers] {
            assert_eq!(h["process"]["user"], u["process"]["user"], "{tag}");
            assert_eq!(env(h), env(&u), "{tag}");
        }
        assert_eq!(from_rootfs["root"]["path"], u["root"]["path"]);
    }
    // The empty user is root, with root's HOME and groups from the image's files, as umoci has it.
    let out = run_ok(&mut hoist(&["runtime-config", &format!("oci:{l}:empty")]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(env(&v).contains(&"HOME=/root".to_string()), "{:?}", env(&v));
    assert_eq!(
        v["process"]["user"]["additionalGids"],
        serde_json::json!([10, 30])
    );
    // root.path is the rootfs directory's name, as umoci writes it.
    let other = t.path().join("elsewhere");
    std::fs::rename(umoci.join("rootfs"), &other).unwrap();
    let out = run_ok(&mut hoist(&[
        "runtime-config",
        "--rootfs",
        &other.display().to_string(),
        &format!("oci:{l}:t"),
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["root"]["path"], "elsewhere");
    assert!(env(&v).contains(&"HOME=/home/app".to_string()));
    // With --rootfs no layer is read: a damaged one goes unnoticed; without it, it is refused.
    for blob in layer_blobs(&layout, "t") {
        damage_blob(&blob);
    }
    run_ok(&mut hoist(&[
        "runtime-config",
        "--rootfs",
        &other.display().to_string(),
        &format!("oci:{l}:t"),
    ]));
    common::run_fail(&mut hoist(&["runtime-config", &format!("oci:{l}:t")]));
    // A missing rootfs is an error naming it.
    let fail = common::run_fail(&mut hoist(&[
        "runtime-config",
        "--rootfs",
        "/nonexistent-rootfs",
        &format!("oci:{l}:t"),
    ]));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("/nonexistent-rootfs"));
}

#[test]
fn runtime_config_reads_layers_top_down_and_verifies_what_it_reads() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display();
    let w = t.path().display();
    // Layer 2 rewrites both files (as useradd does); layer 3 adds an unrelated file.
    run_ok(&mut sh(&format!(
        r#"
        umoci unpack --image "{l}:t" "{w}/b" >/dev/null
        printf 'root:x:0:0:root:/root:/bin/sh\napp:x:3000:3001::/opt/app:/bin/sh\n' > "{w}/b/rootfs/etc/passwd"
        printf 'app:x:3001:\nstaff:x:50:app\n' > "{w}/b/rootfs/etc/group"
        umoci repack --image "{l}:t" "{w}/b"
        umoci unpack --image "{l}:t" "{w}/c" >/dev/null
        echo hello > "{w}/c/rootfs/hello"
        umoci repack --image "{l}:t" "{w}/c"
        "#
    )));
    let layers = layer_blobs(&layout, "t");
    assert_eq!(layers.len(), 3);
    let expect = |out: &str| {
        let v: Value = serde_json::from_str(out).unwrap();
        assert_eq!(
            v["process"]["user"],
            serde_json::json!({"uid": 3000, "gid": 3001, "additionalGids": [50]})
        );
        assert!(env(&v).contains(&"HOME=/opt/app".to_string()));
    };
    expect(&run_ok(&mut hoist(&[
        "runtime-config",
        &format!("oci:{l}:t"),
    ])));
    // The layer below the one holding both files is not read: damaging it changes nothing (verify
    // still finds it).
    damage_blob(&layers[0]);
    expect(&run_ok(&mut hoist(&[
        "runtime-config",
        &format!("oci:{l}:t"),
    ])));
    common::run_fail(&mut hoist(&["verify", &format!("oci:{l}:t")]));
    // A layer that is read is verified to its end: damage above is refused, naming the digest check.
    damage_blob(&layers[2]);
    let fail = common::run_fail(&mut hoist(&["runtime-config", &format!("oci:{l}:t")]));
    let err = String::from_utf8_lossy(&fail.stderr).to_string();
    assert!(err.contains("layer 3/3"), "{err}");
}

#[test]
fn a_non_linux_image_gets_no_runtime_config() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display();
    run_ok(&mut sh(&format!(
        r#"umoci config --image "{l}:t" --os windows --tag win"#
    )));
    // umoci refuses it ("unsupported OS"); so does hoist, naming the OS, and unpacks nothing.
    common::run_fail(std::process::Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{l}:win"),
        &t.path().join("u").display().to_string(),
    ]));
    let fail = common::run_fail(&mut hoist(&["runtime-config", &format!("oci:{l}:win")]));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("windows"));
    let bundle = t.path().join("b");
    let fail = common::run_fail(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:win"),
        &bundle.display().to_string(),
    ]));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("windows"));
    assert!(!bundle.exists(), "nothing is written");
    // A plain tree of it is still fine.
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        &format!("oci:{l}:win"),
        &t.path().join("plain").display().to_string(),
    ]));
}

#[test]
fn runc_runs_a_hoist_bundle() {
    if !require_tool("umoci") || !require_tool("runc") {
        return;
    }
    if !rustix_is_root() {
        eprintln!("SKIPPED: runc run needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let bundle = t.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{}:t", layout.display()),
        &bundle.display().to_string(),
    ]));
    // No terminal here.
    let mut c = read_json(&bundle.join("config.json"));
    c["process"]["terminal"] = Value::Bool(false);
    std::fs::write(bundle.join("config.json"), c.to_string()).unwrap();
    let name = format!("hoist-test-{}", std::process::id());
    let out = std::process::Command::new("runc")
        .args(["run", "-b", &bundle.display().to_string(), &name])
        .output()
        .expect("runc");
    let _ = std::process::Command::new("runc")
        .args(["delete", "-f", &name])
        .output();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // Can runc start anything here? Try the plainest process (root, no groups).
        c["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0});
        std::fs::write(bundle.join("config.json"), c.to_string()).unwrap();
        let probe = std::process::Command::new("runc")
            .args([
                "run",
                "-b",
                &bundle.display().to_string(),
                &format!("{name}-probe"),
            ])
            .output()
            .expect("runc");
        let _ = std::process::Command::new("runc")
            .args(["delete", "-f", &format!("{name}-probe")])
            .output();
        if probe.status.success() {
            panic!("runc runs a plain config but not hoist's: {err}");
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("runc run failed under CI=true: {err}");
        }
        eprintln!("SKIPPED: runc cannot start containers here: {err}");
        return;
    }
    // The user, group and supplementary groups of config.json are in force.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "uid=1000(app) gid=1001(app) groups=1001(app),10(wheel),29(audio)"
    );
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The manifest and config of `layout:tag`.
fn manifest_and_config(layout: &Path, tag: &str) -> (Value, Value) {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = read_json(&layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag")
        .clone();
    let manifest = read_json(&blob(desc["digest"].as_str().unwrap()));
    let config = read_json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    (manifest, config)
}

/// The non-directory member names of the top layer of `layout:tag`, sorted, without `./`.
fn top_layer_names(layout: &Path, tag: &str) -> Vec<String> {
    let (manifest, _) = manifest_and_config(layout, tag);
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    // Directories are left out: hoist writes a parent whose mtime changed, umoci 0.4.7 does not.
    let blob = layout.join("blobs/sha256").join(top).display().to_string();
    let long = run_ok(std::process::Command::new("tar").args(["-tvzf", &blob]));
    let names = run_ok(std::process::Command::new("tar").args(["-tzf", &blob]));
    let mut v: Vec<String> = long
        .lines()
        .zip(names.lines())
        .filter(|(l, _)| !l.starts_with('d'))
        .map(|(_, n)| n.trim_start_matches("./").to_string())
        .filter(|l| !l.is_empty() && l != ".")
        .collect();
    v.sort();
    v
}

#[test]
fn repack_masks_volumes_as_umoci_does() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let (l, w) = (layout.display().to_string(), t.path().display().to_string());
    // The same change in a hoist bundle and an umoci bundle: a file in a volume, a file outside.
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:t"),
        &format!("{w}/h"),
    ]));
    run_ok(std::process::Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{l}:t"),
        &format!("{w}/u"),
    ]));
    for b in ["h", "u"] {
        run_ok(&mut sh(&format!(
            r#"mkdir -p "{w}/{b}/rootfs/data" "{w}/{b}/rootfs/var/log"; echo x > "{w}/{b}/rootfs/data/in-volume"; echo y > "{w}/{b}/rootfs/var/log/l"; echo z > "{w}/{b}/rootfs/etc/new""#
        )));
    }
    run_ok(&mut hoist(&["repack", &format!("{w}/h"), "--tag", "hoist"]));
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:umoci"),
        &format!("{w}/u"),
    ]));
    let hoist_names = top_layer_names(&layout, "hoist");
    assert_eq!(hoist_names, top_layer_names(&layout, "umoci"));
    assert!(
        hoist_names.contains(&"etc/new".to_string()),
        "{hoist_names:?}"
    );
    assert!(
        !hoist_names
            .iter()
            .any(|n| n.starts_with("data/") || n.starts_with("var/log/")),
        "{hoist_names:?}"
    );
    // --no-mask-volumes keeps them, as umoci's.
    run_ok(&mut hoist(&[
        "repack",
        &format!("{w}/h"),
        "--tag",
        "hoist-all",
        "--no-mask-volumes",
    ]));
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--no-mask-volumes",
        "--image",
        &format!("{l}:umoci-all"),
        &format!("{w}/u"),
    ]));
    let all = top_layer_names(&layout, "hoist-all");
    assert_eq!(all, top_layer_names(&layout, "umoci-all"));
    assert!(all.contains(&"data/in-volume".to_string()), "{all:?}");
}

#[test]
fn history_flags_on_repack_and_diff() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let (l, w) = (layout.display().to_string(), t.path().display().to_string());
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:t"),
        &format!("{w}/h"),
    ]));
    run_ok(&mut sh(&format!(r#"echo z > "{w}/h/rootfs/etc/new""#)));
    run_ok(&mut hoist(&[
        "repack",
        &format!("{w}/h"),
        "--tag",
        "r1",
        "--history.created",
        "2020-01-02T03:04:05Z",
        "--history.created_by",
        "made by test",
        "--history.author",
        "someone",
        "--history.comment",
        "a comment",
    ]));
    let (_, c) = manifest_and_config(&layout, "r1");
    let h = c["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(h["created"], "2020-01-02T03:04:05Z");
    assert_eq!(h["created_by"], "made by test");
    assert_eq!(h["author"], "someone");
    assert_eq!(h["comment"], "a comment");
    let before = manifest_and_config(&layout, "t").1["history"]
        .as_array()
        .unwrap()
        .len();
    run_ok(&mut hoist(&[
        "repack",
        &format!("{w}/h"),
        "--tag",
        "r2",
        "--no-history",
    ]));
    assert_eq!(
        manifest_and_config(&layout, "r2").1["history"]
            .as_array()
            .unwrap()
            .len(),
        before
    );
    // A time that is not RFC 3339 is a usage error naming it.
    let bad = common::run_fail(&mut hoist(&[
        "repack",
        &format!("{w}/h"),
        "--tag",
        "r3",
        "--history.created",
        "yesterday",
    ]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("yesterday"));
    // diff appending to an image takes the same flags.
    // diff appending to an image takes the same flags; SOURCE_DATE_EPOCH dates it otherwise.
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("f"), "f").unwrap();
    let (a, b) = (a.display().to_string(), b.display().to_string());
    run_ok(&mut hoist(&[
        "diff",
        &a,
        &b,
        "--image",
        &format!("oci:{l}:t"),
        "--tag",
        "d1",
        "--history.created",
        "2021-02-03T04:05:06Z",
        "--history.comment",
        "from diff",
    ]));
    let (_, c) = manifest_and_config(&layout, "d1");
    let h = c["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (h["created"].as_str(), h["comment"].as_str()),
        (Some("2021-02-03T04:05:06Z"), Some("from diff"))
    );
    run_ok(
        hoist(&[
            "diff",
            &a,
            &b,
            "--image",
            &format!("oci:{l}:t"),
            "--tag",
            "d2",
        ])
        .env("SOURCE_DATE_EPOCH", "1600000000"),
    );
    let (_, c) = manifest_and_config(&layout, "d2");
    assert_eq!(
        c["history"].as_array().unwrap().last().unwrap()["created"],
        "2020-09-13T12:26:40Z"
    );
    assert_eq!(c["created"], "2020-09-13T12:26:40Z");
}

fn umoci_ls(layout: &Path) -> Vec<String> {
    let out = run_ok(std::process::Command::new("umoci").args([
        "ls",
        "--layout",
        &layout.display().to_string(),
    ]));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn tag_untag_and_tags_json_agree_with_umoci() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    run_ok(&mut hoist(&["tag", &format!("oci:{l}:t"), "v1", "v2"]));
    assert_eq!(umoci_ls(&layout), ["t", "v1", "v2"]);
    let listed: Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "tags",
        "--format",
        "json",
        &format!("oci:{l}"),
    ])))
    .unwrap();
    let digest = manifest_digest(&layout, "t");
    let tags: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["t", "v1", "v2"]);
    for e in listed.as_array().unwrap() {
        assert_eq!(e["digest"], digest.as_str());
    }
    // An invalid tag is refused before anything is written.
    let before = std::fs::read(layout.join("index.json")).unwrap();
    let bad = common::run_fail(&mut hoist(&["tag", &format!("oci:{l}:t"), "ok", "bad tag"]));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad tag"));
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), before);
    // untag: umoci sees it gone; a missing tag is exit 2, after the others are removed.
    let out = common::run_fail(&mut hoist(&[
        "untag",
        &format!("oci:{l}:v2"),
        &format!("oci:{l}:nope"),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    assert_eq!(umoci_ls(&layout), ["t", "v1"]);
    // A tag umoci made is listed with its digest.
    run_ok(std::process::Command::new("umoci").args([
        "tag",
        "--image",
        &format!("{l}:t"),
        "from-umoci",
    ]));
    let listed = run_ok(&mut hoist(&[
        "tags",
        "--format",
        "json",
        &format!("oci:{l}"),
    ]));
    assert!(listed.contains("from-umoci"));
}

fn manifest_digest(layout: &Path, tag: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag")["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn stat_matches_umoci_stat() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    let umoci: Value = serde_json::from_str(&run_ok(std::process::Command::new("umoci").args([
        "stat",
        "--json",
        "--image",
        &format!("{l}:t"),
    ])))
    .unwrap();
    let ours: Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "stat",
        "--format",
        "json",
        &format!("oci:{l}:t"),
    ])))
    .unwrap();
    assert_eq!(ours, umoci);
    assert_eq!(ours["history"].as_array().unwrap().len(), 2);
    let table = run_ok(&mut hoist(&["stat", &format!("oci:{l}:t")]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("LAYER") && lines[0].contains("CREATED BY"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("sha256:") && lines[1].contains("umoci repack"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("<none>") && lines[2].contains("umoci config"),
        "{table}"
    );
}

fn blob_names(layout: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn gc_removes_strays_and_says_so() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    // An unreferenced blob: the image before its config edit loses its tag.
    run_ok(&mut hoist(&["tag", &format!("oci:{l}:t"), "keep"]));
    run_ok(std::process::Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:t"),
        "--config.env",
        "X=1",
    ]));
    run_ok(&mut hoist(&["untag", &format!("oci:{l}:keep")]));
    // umoci gc on a copy removes the unreferenced blobs; hoist's blob result must match.
    let copy = t.path().join("copy");
    run_ok(std::process::Command::new("cp").args(["-a", &l, &copy.display().to_string()]));
    run_ok(std::process::Command::new("umoci").args([
        "gc",
        "--layout",
        &copy.display().to_string(),
    ]));

    // Strays, and what must survive.
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), "keep me").unwrap();
    std::fs::write(layout.join("junk.txt"), "x").unwrap();
    std::fs::create_dir_all(layout.join("stuff/deep")).unwrap();
    std::fs::write(layout.join("stuff/deep/f"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, layout.join("link")).unwrap();
    std::fs::create_dir_all(layout.join("blobs/md5")).unwrap();
    std::fs::write(layout.join("blobs/sha256/not-a-digest"), "x").unwrap();
    std::fs::create_dir_all(layout.join("blobs/sha256/sub")).unwrap();
    std::fs::write(layout.join(".hoist-tmp-dead"), "x").unwrap();
    // A live writer's temp directory (another tool, holding a flock on it) is left alone.
    std::fs::create_dir(layout.join(".umoci-live")).unwrap();
    let live = std::fs::File::open(layout.join(".umoci-live")).unwrap();
    // SAFETY: flock on an open descriptor.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&live), libc::LOCK_EX) },
        0
    );

    let before = common::snapshot(&layout);
    let dry = run_ok(&mut hoist(&["gc", "--dry-run", &format!("oci:{l}")]));
    assert_eq!(
        common::snapshot(&layout),
        before,
        "a dry run removes nothing"
    );
    for stray in [
        "junk.txt",
        "stuff",
        "link",
        "blobs/md5",
        "blobs/sha256/not-a-digest",
        "blobs/sha256/sub",
    ] {
        assert!(
            dry.contains(&format!("would remove stray {stray}\n")),
            "{stray} in {dry}"
        );
    }
    assert!(!dry.contains(".umoci-live"), "{dry}");
    assert!(dry.contains("would remove blob sha256:"), "{dry}");

    let out = run_ok(&mut hoist(&["gc", &format!("oci:{l}")]));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("removed ")).count(),
        dry.lines()
            .filter(|l| l.starts_with("would remove "))
            .count(),
        "{out}\n{dry}"
    );
    assert!(out.contains("1 temp files"), "{out}");
    let mut left: Vec<String> = std::fs::read_dir(&layout)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".umoci-live", "blobs", "index.json", "oci-layout"]);
    assert!(!layout.join("blobs/md5").exists());
    assert_eq!(
        std::fs::read_to_string(outside.join("precious")).unwrap(),
        "keep me"
    );
    assert_eq!(blob_names(&layout), blob_names(&copy));
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{l}")]));
    drop(live);
    // Once its writer is gone, it is a stray like the others.
    let out = run_ok(&mut hoist(&["gc", &format!("oci:{l}")]));
    assert!(out.contains("removed stray .umoci-live"), "{out}");
}

/// The same edit in a bundle: a file added, one deleted, one changed, a directory made.
fn edit_bundle(bundle: &Path) {
    let r = bundle.join("rootfs").display().to_string();
    run_ok(&mut sh(&format!(
        r#"echo new > "{r}/added"; rm "{r}/etc/group"; echo more >> "{r}/etc/passwd"; mkdir -p "{r}/srv/a b"; echo q > "{r}/srv/a b/f*?[#""#
    )));
}

#[test]
fn umoci_repacks_a_hoist_bundle() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    let (h, u) = (t.path().join("h"), t.path().join("u"));
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:t"),
        &h.display().to_string(),
    ]));
    assert!(h.join("umoci.json").exists());
    run_ok(std::process::Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{l}:t"),
        &u.display().to_string(),
    ]));
    // Untouched, umoci finds no change in hoist's bundle: its mtree describes the tree exactly.
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:same"),
        &h.display().to_string(),
    ]));
    let (same, _) = manifest_and_config(&layout, "same");
    let (base, _) = manifest_and_config(&layout, "t");
    assert!(
        same["layers"] == base["layers"],
        "umoci found changes in an untouched hoist bundle: {:?}",
        top_layer_names(&layout, "same")
    );
    edit_bundle(&h);
    edit_bundle(&u);
    for (b, tag) in [(&h, "from-hoist"), (&u, "from-umoci")] {
        run_ok(std::process::Command::new("umoci").args([
            "repack",
            "--image",
            &format!("{l}:{tag}"),
            &b.display().to_string(),
        ]));
    }
    let names = top_layer_names(&layout, "from-hoist");
    assert_eq!(names, top_layer_names(&layout, "from-umoci"));
    assert!(names.contains(&"etc/.wh.group".to_string()), "{names:?}");
    assert!(names.contains(&"srv/a b/f*?[#".to_string()), "{names:?}");
}

#[test]
fn hoist_repacks_an_umoci_bundle() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    let (a, b, h) = (t.path().join("a"), t.path().join("b"), t.path().join("h"));
    for d in [&a, &b] {
        run_ok(std::process::Command::new("umoci").args([
            "unpack",
            "--image",
            &format!("{l}:t"),
            &d.display().to_string(),
        ]));
    }
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:t"),
        &h.display().to_string(),
    ]));
    // Untouched: hoist finds no change in umoci's bundle (its mtree has whole seconds only).
    let out = run_ok(&mut hoist(&[
        "repack",
        &a.display().to_string(),
        "--dest",
        &format!("oci:{l}"),
        "--tag",
        "none",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changes"], 0, "{out}");
    // Without --dest it says what is missing.
    let fail = common::run_fail(&mut hoist(&[
        "repack",
        &a.display().to_string(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("--dest"));
    for d in [&a, &b, &h] {
        edit_bundle(d);
    }
    run_ok(&mut hoist(&[
        "repack",
        &a.display().to_string(),
        "--dest",
        &format!("oci:{l}"),
        "--tag",
        "hoist-from-umoci",
    ]));
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:umoci-from-umoci"),
        &b.display().to_string(),
    ]));
    run_ok(&mut hoist(&[
        "repack",
        &h.display().to_string(),
        "--tag",
        "hoist-from-hoist",
    ]));
    let names = top_layer_names(&layout, "hoist-from-umoci");
    assert_eq!(names, top_layer_names(&layout, "umoci-from-umoci"));
    assert_eq!(names, top_layer_names(&layout, "hoist-from-hoist"));
    assert!(names.contains(&"etc/.wh.group".to_string()), "{names:?}");
    // The new image builds on the one umoci unpacked.
    let (m, _) = manifest_and_config(&layout, "hoist-from-umoci");
    let (base, _) = manifest_and_config(&layout, "t");
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        base["layers"].as_array().unwrap().len() + 1
    );
    run_ok(&mut hoist(&[
        "verify",
        &format!("oci:{l}:hoist-from-umoci"),
    ]));
}

#[test]
fn refresh_bundle_keeps_umocis_metadata_current() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    let h = t.path().join("h");
    let hs = h.display().to_string();
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:t"),
        &hs,
    ]));
    std::fs::write(h.join("rootfs/first"), "1").unwrap();
    run_ok(&mut hoist(&[
        "repack",
        &hs,
        "--tag",
        "r1",
        "--refresh-bundle",
    ]));
    std::fs::write(h.join("rootfs/second"), "2").unwrap();
    // umoci now repacks against r1: only the second change.
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:r2"),
        &hs,
    ]));
    assert_eq!(top_layer_names(&layout, "r2"), ["second"]);
    let (r1, _) = manifest_and_config(&layout, "r1");
    let (r2, _) = manifest_and_config(&layout, "r2");
    assert_eq!(
        r2["layers"].as_array().unwrap().len(),
        r1["layers"].as_array().unwrap().len() + 1
    );
    let mtrees = std::fs::read_dir(&h)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".mtree")
        })
        .count();
    assert_eq!(mtrees, 1);
}

#[test]
fn an_untouched_umoci_bundle_with_a_device_repacks_empty() {
    if !require_tool("umoci") {
        return;
    }
    if !rustix_is_root() {
        eprintln!("SKIPPED: making a device node needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (l, w) = (t.path().join("layout"), t.path().display().to_string());
    let l = l.display().to_string();
    run_ok(&mut sh(&format!(
        r#"
        umoci init --layout "{l}"
        umoci new --image "{l}:t"
        umoci unpack --image "{l}:t" "{w}/b" >/dev/null
        mkdir "{w}/b/rootfs/dev"; mknod "{w}/b/rootfs/dev/null" c 1 3; echo x > "{w}/b/rootfs/f"
        umoci repack --image "{l}:t" "{w}/b"
        umoci unpack --image "{l}:t" "{w}/u" >/dev/null
        "#
    )));
    let out = run_ok(&mut hoist(&[
        "repack",
        &format!("{w}/u"),
        "--dest",
        &format!("oci:{l}"),
        "--tag",
        "same",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changes"], 0, "{out}");
}

#[test]
fn rootless_bundles_repack_across_tools() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (l, w) = (t.path().join("layout"), t.path().display().to_string());
    let layout = l.clone();
    let l = l.display().to_string();
    // A file and directory owned by 1000:1000 (recorded in user.rootlesscontainers when rootless).
    let own = if rustix_is_root() {
        r#"chown -R 1000:1000 "{w}/b/rootfs/home/app""#
    } else {
        "true"
    };
    run_ok(&mut sh(&format!(
        r#"
        umoci init --layout "{l}"
        umoci new --image "{l}:t"
        umoci unpack --rootless --image "{l}:t" "{w}/b" >/dev/null
        mkdir -p "{w}/b/rootfs/home/app"; echo hi > "{w}/b/rootfs/home/app/f"; echo r > "{w}/b/rootfs/rootfile"
        {own}
        umoci repack --image "{l}:t" "{w}/b"
        "#,
        own = own.replace("{w}", &w)
    )));
    let (h, u) = (format!("{w}/h"), format!("{w}/u"));
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        "--bundle",
        &format!("oci:{l}:t"),
        &h,
    ]));
    run_ok(std::process::Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{l}:t"),
        &u,
    ]));
    let meta = read_json(&Path::new(&h).join("umoci.json"));
    assert_eq!(meta["map_options"]["rootless"], true);
    // Untouched: umoci finds nothing to add.
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:same"),
        &h,
    ]));
    let (same, _) = manifest_and_config(&layout, "same");
    let (base, _) = manifest_and_config(&layout, "t");
    assert!(same["layers"] == base["layers"]);
    // And the other way: hoist repacks a rootless bundle umoci unpacked (owners from its records).
    let a = format!("{w}/a");
    run_ok(std::process::Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{l}:t"),
        &a,
    ]));
    let out = run_ok(&mut hoist(&[
        "repack",
        &a,
        "--dest",
        &format!("oci:{l}"),
        "--tag",
        "none",
    ]));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["changes"],
        0,
        "{out}"
    );
    for b in [&h, &u, &a] {
        run_ok(&mut sh(&format!(
            r#"echo x >> "{b}/rootfs/home/app/f"; echo n > "{b}/rootfs/new""#
        )));
    }
    run_ok(&mut hoist(&[
        "repack",
        &a,
        "--dest",
        &format!("oci:{l}"),
        "--tag",
        "ha",
    ]));
    run_ok(std::process::Command::new("umoci").args(["repack", "--image", &format!("{l}:fh"), &h]));
    run_ok(std::process::Command::new("umoci").args(["repack", "--image", &format!("{l}:fu"), &u]));
    assert_eq!(top_layer_names(&layout, "fh"), ["home/app/f", "new"]);
    assert_eq!(
        top_layer_names(&layout, "fh"),
        top_layer_names(&layout, "fu")
    );
    // Owners too: the whole listing (owner, mode, size, name) of both layers agrees.
    let listing = |tag: &str| {
        let (m, _) = manifest_and_config(&layout, tag);
        let d = m["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let out = run_ok(std::process::Command::new("tar").args([
            "--numeric-owner",
            "-tvzf",
            &layout.join("blobs/sha256").join(d).display().to_string(),
        ]));
        out.lines()
            .filter(|l| !l.starts_with('d'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(listing("fh"), listing("fu"));
    assert_eq!(listing("ha"), listing("fu"));
}

#[test]
fn runc_runs_a_rootless_hoist_bundle() {
    if !require_tool("umoci") || !require_tool("runc") || !require_tool("setpriv") {
        return;
    }
    if !rustix_is_root() {
        eprintln!("SKIPPED: the test switches to an unprivileged user, which needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_user_image(&layout, "t");
    let l = layout.display().to_string();
    // Rootless, only the user's own id is mapped (to root): the image runs as root.
    run_ok(std::process::Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:t"),
        "--config.user",
        "root",
    ]));
    let w = t.path().display().to_string();
    run_ok(&mut sh(&format!(
        r#"chmod 755 "{w}"; chown -R 65534:65534 "{w}""#
    )));
    let as_nobody = |script: &str| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "env",
            ])
            .arg(format!("HOME={w}"))
            .arg(format!("XDG_RUNTIME_DIR={w}"))
            .args(["sh", "-c", script])
            .output()
            .expect("setpriv")
    };
    let run = |name: &str| {
        format!(
            r#"cd "{w}" && runc --root "{w}/runc" run -b b hoist-{name}-{pid}"#,
            pid = std::process::id()
        )
    };
    run_ok(&mut sh(&format!(
        r#"cd "{w}" && setpriv --reuid 65534 --regid 65534 --clear-groups "{bin}" unpack -q --bundle oci:layout:t b"#,
        bin = common::hoist_bin().display()
    )));
    let path = t.path().join("b/config.json");
    let mut c = read_json(&path);
    // hoist chose the rootless variant (not running as root): the user's id is the only one mapped.
    assert_eq!(
        c["linux"]["uidMappings"][0]["hostID"], 65534,
        "{}",
        c["linux"]
    );
    assert!(
        c["process"]["user"]["additionalGids"].is_null(),
        "{}",
        c["process"]
    );
    c["process"]["terminal"] = Value::Bool(false);
    std::fs::write(&path, c.to_string()).unwrap();
    let out = as_nobody(&run("rootless"));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // Can rootless runc start anything here? Try the plainest process.
        c["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0});
        std::fs::write(&path, c.to_string()).unwrap();
        let probe = as_nobody(&run("probe"));
        if probe.status.success() {
            panic!("rootless runc runs a plain config but not hoist's: {err}");
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("rootless runc run failed under CI=true: {err}");
        }
        eprintln!("SKIPPED: rootless runc cannot start containers here: {err}");
        return;
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "uid=0(root) gid=0(root) groups=0(root)"
    );
}

#[test]
fn umoci_finds_no_change_in_a_complex_hoist_bundle() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::unpack::build_complex(&layout, "t");
    let l = layout.display().to_string();
    let h = t.path().join("h").display().to_string();
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:t"),
        &h,
    ]));
    // Owners, setuid bits, xattrs, fifos, hardlinks, symlinks, opaque directories: umoci's check of
    // its manifest against the tree finds nothing (so no new layer, or an empty one).
    run_ok(std::process::Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:same"),
        &h,
    ]));
    let (same, _) = manifest_and_config(&layout, "same");
    let (base, _) = manifest_and_config(&layout, "t");
    assert!(
        same["layers"] == base["layers"],
        "umoci found changes: {:?}",
        top_layer_names(&layout, "same")
    );
}
