//! The subset of containers-policy.json(5) that `copy --policy` applies, as skopeo does: a
//! `default` list of requirements, overridden per transport (`docker`, `oci`) and scope (for
//! `docker`: `host/repo:tag`, `host/repo`, each parent namespace, `host`; for `oci`: the layout
//! path with `:tag`, the path, each parent directory; `""` for the whole transport). Requirements:
//! `insecureAcceptAnything`, `reject`, `sigstoreSigned` with `keyPath` or `keyData` and
//! `signedIdentity` (`matchRepoDigestOrExact`, the default, `matchExact`, `matchRepository`). Every
//! requirement of the list that applies must accept. Anything else is refused, never ignored.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::{IdentityRule, ImageSignature, check_signatures, keys};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::TransportRef;

/// A parsed policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Requirements for images no transport scope names.
    default: Vec<Requirement>,
    /// Per transport, per scope.
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

// Unknown fields are refused, not ignored: a requirement hoist does not understand (a Rekor key, a
// Fulcio section) must not be weakened into one it does.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum Requirement {
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything,
    #[serde(rename = "reject")]
    Reject,
    #[serde(rename = "sigstoreSigned", rename_all = "camelCase")]
    SigstoreSigned {
        key_path: Option<String>,
        key_data: Option<String>,
        signed_identity: Option<SignedIdentity>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum SignedIdentity {
    #[serde(rename = "matchRepoDigestOrExact")]
    RepoDigestOrExact,
    #[serde(rename = "matchExact")]
    Exact,
    #[serde(rename = "matchRepository")]
    Repository,
}

/// What a policy asks of one image.
#[derive(Debug)]
pub enum Decision {
    /// Copy it; no signature is needed.
    Accept,
    /// Refuse it, with the reason.
    Reject(String),
    /// Copy it only if its signatures satisfy every check.
    NeedsSignatures(Vec<SignatureCheck>),
}

/// One `sigstoreSigned` requirement, resolved: the key and the identity rule.
#[derive(Debug)]
pub struct SignatureCheck {
    /// The public key signatures must verify with.
    pub key: super::PublicKey,
    /// How the signed identity must match the image.
    pub rule: IdentityRule,
}

impl Policy {
    /// Reads a policy file. `keyPath`s are read now, relative paths from the policy file's directory.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading policy {}", path.display()), e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a policy document; `what` names it in errors.
    pub fn parse(text: &[u8], what: &str) -> Result<Policy> {
        let policy: Policy = serde_json::from_slice(text)
            .map_err(|e| Error::invalid_document(format!("policy {what}"), e.to_string()))?;
        if policy.default.is_empty() {
            return Err(Error::invalid_document(
                format!("policy {what}"),
                "\"default\" must list at least one requirement",
            ));
        }
        Ok(policy)
    }

    /// The requirements that apply to `image`: the most specific scope of its transport, else the
    /// transport's `""` scope, else `default`.
    fn requirements_for(&self, image: &TransportRef) -> &[Requirement] {
        let (transport, scopes) = (image.transport(), image.policy_scopes());
        if let Some(by_scope) = self.transports.get(transport) {
            for scope in scopes.iter().map(String::as_str).chain([""]) {
                if let Some(reqs) = by_scope.get(scope) {
                    return reqs;
                }
            }
        }
        &self.default
    }

    /// What the policy says of `image`. `base` is the policy file's directory (for relative
    /// `keyPath`s).
    pub fn decide(&self, image: &TransportRef, base: &Path) -> Result<Decision> {
        let reqs = self.requirements_for(image);
        if reqs.is_empty() {
            return Err(Error::Signature(format!(
                "{image}: the policy's requirement list for it is empty (refused)"
            )));
        }
        let mut checks = Vec::new();
        for req in reqs {
            match req {
                Requirement::InsecureAcceptAnything => {}
                Requirement::Reject => {
                    return Ok(Decision::Reject(format!(
                        "{image}: the policy rejects this image (requirement \"reject\")"
                    )));
                }
                Requirement::SigstoreSigned {
                    key_path,
                    key_data,
                    signed_identity,
                } => {
                    let key = match (key_path, key_data) {
                        (Some(p), None) => {
                            let path = base.join(p);
                            let text = std::fs::read_to_string(&path).map_err(|e| {
                                Error::io(format!("reading policy key {}", path.display()), e)
                            })?;
                            keys::read_public_key(&text, &path.display().to_string())?
                        }
                        (None, Some(d)) => {
                            let pem = B64.decode(d).map_err(|e| Error::Key {
                                what: "keyData of the policy".into(),
                                reason: format!("not base64: {e}"),
                            })?;
                            keys::read_public_key(
                                &String::from_utf8_lossy(&pem),
                                "keyData of the policy",
                            )?
                        }
                        _ => {
                            return Err(Error::invalid_document(
                                "policy",
                                "sigstoreSigned needs exactly one of keyPath and keyData",
                            ));
                        }
                    };
                    checks.push(SignatureCheck {
                        key,
                        rule: identity_rule(signed_identity.as_ref(), image)?,
                    });
                }
            }
        }
        Ok(if checks.is_empty() {
            Decision::Accept
        } else {
            Decision::NeedsSignatures(checks)
        })
    }
}

fn identity_rule(rule: Option<&SignedIdentity>, image: &TransportRef) -> Result<IdentityRule> {
    let Some(name) = image.registry_image() else {
        // A layout has no registry identity: the signature's digest and key are what is checked.
        return Ok(IdentityRule::Any);
    };
    let exact = || match &name.tag {
        Some(tag) => format!("{}:{tag}", name.name()),
        None => name.name(),
    };
    Ok(match rule.unwrap_or(&SignedIdentity::RepoDigestOrExact) {
        SignedIdentity::RepoDigestOrExact if name.digest.is_some() => {
            IdentityRule::Repository(name.name())
        }
        SignedIdentity::RepoDigestOrExact | SignedIdentity::Exact => IdentityRule::Exact(exact()),
        SignedIdentity::Repository => IdentityRule::Repository(name.name()),
    })
}

/// Applies `decision` to the image whose root digest is `digest` and whose signatures are
/// `signatures`: `Ok` when it may be copied, an error saying which requirement failed otherwise.
pub fn enforce(
    decision: &Decision,
    image: &str,
    digest: &Digest,
    signatures: &[ImageSignature],
) -> Result<()> {
    match decision {
        Decision::Accept => Ok(()),
        Decision::Reject(reason) => Err(Error::Signature(reason.clone())),
        Decision::NeedsSignatures(checks) => {
            for check in checks {
                check_signatures(signatures, &check.key, digest, &check.rule, image).map_err(
                    |e| Error::Signature(format!("policy requirement sigstoreSigned failed: {e}")),
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_scope_wins_and_unknown_requirements_are_refused() {
        let p = Policy::parse(
            br#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "r.example/team":[{"type":"insecureAcceptAnything"}],
                "r.example/team/app:v1":[{"type":"reject"}]}}}"#,
            "p",
        )
        .unwrap();
        let decide = |r: &str| p.decide(&r.parse().unwrap(), Path::new("/")).unwrap();
        assert!(matches!(
            decide("docker://r.example/team/app:v2"),
            Decision::Accept
        ));
        assert!(matches!(
            decide("docker://r.example/team/app:v1"),
            Decision::Reject(_)
        ));
        assert!(matches!(
            decide("docker://r.example/other:v1"),
            Decision::Reject(_)
        ));
        let e = Policy::parse(br#"{"default":[{"type":"signedBy"}]}"#, "p").unwrap_err();
        assert!(e.to_string().contains("signedBy"), "{e}");
        let e = Policy::parse(
            br#"{"default":[{"type":"sigstoreSigned","keyPath":"k","rekorPublicKeyPath":"r"}]}"#,
            "p",
        )
        .unwrap_err();
        assert!(e.to_string().contains("rekorPublicKeyPath"), "{e}");
    }

    #[test]
    fn key_data_and_signed_identity_resolve_per_image() {
        let key = keys::generate().unwrap();
        let pem = keys::public_key_pem(&key.public_key()).unwrap();
        let policy = |identity: &str| {
            let text = format!(
                r#"{{"default":[{{"type":"sigstoreSigned","keyData":"{}"{identity}}}],
                    "transports":{{"oci":{{"/srv/layouts":[{{"type":"reject"}}]}}}}}}"#,
                B64.encode(&pem)
            );
            Policy::parse(text.as_bytes(), "p").unwrap()
        };
        let rule = |p: &Policy, image: &str| match p.decide(&image.parse().unwrap(), Path::new("/"))
        {
            Ok(Decision::NeedsSignatures(checks)) => {
                assert_eq!(checks[0].key, key.public_key());
                checks[0].rule.clone()
            }
            other => panic!("{other:?}"),
        };
        let default = policy("");
        assert_eq!(
            rule(&default, "docker://r.example/app:v1"),
            IdentityRule::Exact("r.example/app:v1".into())
        );
        let by_digest = format!("docker://r.example/app@{}", Digest::sha256(b"m"));
        assert_eq!(
            rule(&default, &by_digest),
            IdentityRule::Repository("r.example/app".into())
        );
        let repo = policy(r#","signedIdentity":{"type":"matchRepository"}"#);
        assert_eq!(
            rule(&repo, "docker://r.example/app:v1"),
            IdentityRule::Repository("r.example/app".into())
        );
        let exact = policy(r#","signedIdentity":{"type":"matchExact"}"#);
        assert_eq!(
            rule(&exact, "docker://r.example/app:v1"),
            IdentityRule::Exact("r.example/app:v1".into())
        );
        // A layout under a scoped directory takes that scope's requirements.
        assert!(matches!(
            default.decide(&"oci:/srv/layouts/a:v1".parse().unwrap(), Path::new("/")),
            Ok(Decision::Reject(_))
        ));
        assert_eq!(rule(&default, "oci:/elsewhere/a:v1"), IdentityRule::Any);
    }
}
