//! The Cells kinds through `Publication::parse`: the rooms each derives, and its refusals.

use crate::{event::Publication, rooms::Scope};

fn publish(json: &str) -> Result<Publication, String> {
    Publication::parse(json, 64).map_err(|e| format!("{}: {e}", e.code()))
}

fn rooms(p: &Publication) -> Vec<String> {
    p.targets.rooms().map(|(room, _)| room).collect()
}

#[test]
fn a_node_event_reaches_the_roots_at_and_above_both_paths() {
    let p = publish(
        r#"{"event":"cells:node","data":{"Type":"UPDATE_PATH",
        "Source":{"Uuid":"u","Path":"ds/a/x.txt"},"Target":{"Uuid":"u","Path":"ds/b/x.txt"}}}"#,
    )
    .unwrap();
    assert_eq!(
        rooms(&p),
        [
            "tree:ds",
            "tree:ds/a",
            "tree:ds/a/x.txt",
            "tree:ds/b",
            "tree:ds/b/x.txt"
        ]
    );
}

#[test]
fn user_metas_go_only_to_the_user_named() {
    let body = r#""data":{"Type":"UPDATE_USER_META","Target":{"Uuid":"u","Path":"ds/a"}}"#;
    let error = publish(&format!(r#"{{"event":"cells:node",{body}}}"#)).unwrap_err();
    assert!(error.contains("name `user`"), "{error}");
    let p = publish(&format!(
        r#"{{"event":"cells:node","user":"alice",{body}}}"#
    ))
    .unwrap();
    assert_eq!(rooms(&p), ["user:alice"]);
}

#[test]
fn tasks_go_to_their_owner_and_system_tasks_to_admins() {
    let task = |owner: &str| {
        publish(&format!(
            r#"{{"event":"cells:task","data":{{"TaskUpdated":{{"TriggerOwner":"{owner}"}},"Job":{{"ID":"j"}}}}}}"#
        ))
    };
    assert_eq!(rooms(&task("alice").unwrap()), ["login:alice"]);
    assert_eq!(
        rooms(&task("pydio.system.user").unwrap()),
        ["profile:admin"]
    );
    let no_job = publish(r#"{"event":"cells:task","data":{"TaskUpdated":{"TriggerOwner":"a"}}}"#);
    assert!(no_job.unwrap_err().contains("`Job`"));
}

#[test]
fn idm_events_follow_cells_first_rule() {
    let idm = |data: &str| {
        publish(&format!(r#"{{"event":"cells:idm","data":{data}}}"#)).map(|p| rooms(&p))
    };
    assert_eq!(
        idm(r#"{"Acl":{"RoleID":"r1","Action":{"Name":"read"}},"User":{"Login":"bob"}}"#),
        Ok(vec!["role:r1".to_owned()])
    );
    assert_eq!(
        idm(r#"{"Acl":{"RoleID":"r1","Action":{"Name":"parameter:x"}},"Role":{"Uuid":"r2"}}"#),
        Ok(vec!["role:r2".to_owned()])
    );
    assert_eq!(
        idm(r#"{"User":{"Login":"bob","Uuid":"u-1"}}"#),
        Ok(vec!["login:bob".to_owned()])
    );
    assert_eq!(
        idm(r#"{"User":{"Uuid":"u-1"}}"#),
        Ok(vec!["user:u-1".to_owned()])
    );
    assert_eq!(
        idm(r#"{"Type":"UPDATE","Workspace":{"UUID":"ws1"}}"#),
        Ok(vec!["workspace:ws1".to_owned()])
    );
    assert_eq!(
        idm(r#"{"Type":"UPDATE"}"#),
        Ok(vec![]),
        "accepted, for no one"
    );
    assert!(idm("[1]").unwrap_err().contains("object"));
    let typed = idm(r#"{"User":{"Login":5}}"#).unwrap_err();
    assert!(
        typed.starts_with("bad_request") && typed.contains("`User.Login`"),
        "{typed}"
    );
    assert!(
        idm(r#"{"Role":"r"}"#)
            .unwrap_err()
            .contains("`Role` must be an object")
    );
}

#[test]
fn activities_go_to_the_inbox_owner_with_short_names() {
    let p = publish(
        r#"{"event":"cells:activity","data":{"OwnerType":"USER","OwnerId":"alice","BoxName":"inbox",
        "Activity":{"actor":{"id":"bob"},"object":{"name":"/ds/folder/a.txt"},"target":{"name":"ds/x/"}}}}"#,
    )
    .unwrap();
    assert_eq!(rooms(&p), ["login:alice"]);
    let data: serde_json::Value = serde_json::from_str(p.data.get()).unwrap();
    assert_eq!(data["Activity"]["object"]["name"], "a.txt");
    assert_eq!(data["Activity"]["target"]["name"], "x");
    let outbox = publish(
        r#"{"event":"cells:activity","data":{"OwnerType":"NODE","OwnerId":"n","BoxName":"outbox","Activity":{}}}"#,
    );
    assert!(outbox.is_ok(), "accepted: the door delivers it to no one");
    for (data, says) in [
        (r#"{"OwnerId":"a","Activity":"x"}"#, "`Activity`"),
        (r#"{"OwnerId":5,"Activity":{}}"#, "`OwnerId`"),
        (r#"{"OwnerId":"a","BoxName":1,"Activity":{}}"#, "`BoxName`"),
        (
            r#"{"OwnerId":"a","Activity":{"actor":"x"}}"#,
            "`Activity.actor`",
        ),
    ] {
        let error = publish(&format!(r#"{{"event":"cells:activity","data":{data}}}"#)).unwrap_err();
        assert!(error.contains(says), "{data}: {error}");
    }
}

#[test]
fn unknown_kinds_are_refused_and_other_events_untouched() {
    assert!(
        publish(r#"{"event":"cells:nodes","user":"a"}"#)
            .unwrap_err()
            .contains("cells:node, cells:task")
    );
    let p = publish(r#"{"event":"node","user":"a","data":{"Type":"READ"}}"#).unwrap();
    assert_eq!(p.data.get(), r#"{"Type":"READ"}"#);
    assert!(p.targets.scopes.is_empty());
    assert!(!rooms(&p).iter().any(|r| Scope::from_room(r).is_ok()));
}
