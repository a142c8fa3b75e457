//! The repository interface (`hoist::open_repository`) on an OCI layout: the plumbing an embedder
//! uses for tags and blobs by digest, without matching on transports.

use std::io::Read;

use hoist::transport::repository::{Deleted, Item};
use hoist::{Digest, Error, OpenOptions, TransportRef};

mod common;

fn reference(text: &str) -> TransportRef {
    text.parse().unwrap()
}

#[test]
fn a_layout_is_a_repository_of_tags_and_verified_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    common::write_image(&layout);
    let at = |s: &str| reference(&format!("oci:{}{s}", layout.display()));

    let (repo, item) = hoist::open_repository(&at(":v1"), &OpenOptions::default()).unwrap();
    assert_eq!(item, Some(Item::Tag("v1".into())));
    let doc = repo.resolve(item.as_ref().unwrap()).unwrap();
    repo.tag(&doc, &["stable".to_string()]).unwrap();
    let tagged = repo.tagged().unwrap();
    let names: Vec<&str> = tagged.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["v1", "stable"]);
    assert!(
        tagged
            .iter()
            .all(|(_, d)| d.digest().to_string() == doc.digest().to_string())
    );
    // Invalid tags are refused before anything is written.
    assert!(repo.tag(&doc, &["ok".into(), "bad tag".into()]).is_err());
    assert_eq!(repo.tags().unwrap(), ["v1", "stable"]);

    // Blobs by digest: in, out, verified; a wrong digest stores nothing.
    let content = b"a blob of plain bytes".to_vec();
    let digest = Digest::sha256(&content);
    repo.put_blob(&digest, content.len() as u64, &mut &content[..])
        .unwrap();
    assert_eq!(repo.blob_size(&digest).unwrap(), content.len() as u64);
    let mut back = Vec::new();
    repo.open_blob(&digest, content.len() as u64)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, content);
    let wrong = Digest::sha256(b"something else");
    assert!(
        repo.put_blob(&wrong, content.len() as u64, &mut &content[..])
            .is_err()
    );
    assert!(repo.blob_size(&wrong).unwrap_err().is_not_found());

    // Deleting a tag keeps the image's other tag; deleting the digest removes every entry of it.
    let deleted = repo.delete(&Item::Tag("stable".into()), true).unwrap();
    assert_eq!(
        deleted,
        Deleted::Tag {
            digest: doc.digest().clone(),
            repointed: false
        }
    );
    assert_eq!(repo.tags().unwrap(), ["v1"]);
    let by_digest = Item::Digest(doc.digest().clone());
    assert!(repo.delete(&by_digest, true).unwrap_err().is_usage());
    assert_eq!(
        repo.delete(&by_digest, false).unwrap(),
        Deleted::Manifest(doc.digest().clone())
    );
    assert!(repo.tags().unwrap().is_empty());
    assert!(repo.delete(&by_digest, false).unwrap_err().is_not_found());
}

#[test]
fn transports_that_are_not_repositories_say_so() {
    for text in [
        "dir:/tmp/x",
        "oci-archive:/tmp/x.tar",
        "docker-archive:/tmp/x.tar",
    ] {
        let err = match hoist::open_repository(&reference(text), &OpenOptions::default()) {
            Err(e) => e,
            Ok(_) => panic!("{text} opened as a repository"),
        };
        assert!(matches!(err, Error::Unsupported(_)), "{text}: {err}");
        let transport = text.split(':').next().unwrap();
        assert!(
            err.to_string()
                .starts_with(&format!("{transport} is not a repository")),
            "{err}"
        );
        assert!(!reference(text).kind().repository);
    }
}
