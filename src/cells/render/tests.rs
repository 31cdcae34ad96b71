//! Rendering against workspaces written as the auth answer gives them: paths, boundaries,
//! several workspaces and roots, and the frames every recipient shares.

use super::*;

fn workspaces(json: &str) -> Vec<WorkspaceRoots> {
    serde_json::from_str(json).unwrap()
}

fn render(data: &str, workspaces: &[WorkspaceRoots]) -> Vec<String> {
    let parsed = Parsed::of("cells:node", data);
    let mut out = Vec::new();
    parsed.frames(None, workspaces, &mut out);
    out.iter().map(|f| f.as_str().to_owned()).collect()
}

const COMMON: &str =
    r#"[{"id":"ws1","slug":"common-files","roots":[{"uuid":"r1","path":"pydiods1"}]}]"#;

#[test]
fn a_rename_reads_as_the_workspace_shows_it() {
    let frames = render(
        r#"{"Type":"UPDATE_PATH","Source":{"Uuid":"u1","Path":"pydiods1/a.txt","MetaStore":{"name":"\"a.txt\""}},
        "Target":{"Uuid":"u1","Path":"pydiods1/b.txt","Type":"LEAF","Size":"12","MetaStore":{"name":"\"b.txt\""}}}"#,
        &workspaces(COMMON),
    );
    assert_eq!(
        frames,
        [
            r#"{"Type":"UPDATE_PATH","Source":{"Uuid":"u1","Path":"common-files/a.txt","MetaStore":{"name":"\"a.txt\"","EventWorkspaceId":"\"ws1\""}},"Target":{"Uuid":"u1","Path":"common-files/b.txt","Type":"LEAF","Size":"12","MetaStore":{"name":"\"b.txt\"","EventWorkspaceId":"\"ws1\""}}}"#
        ]
    );
}

#[test]
fn crossing_the_boundary_creates_or_deletes() {
    let ws = workspaces(COMMON);
    let moved = |from: &str, to: &str| {
        render(
            &format!(
                r#"{{"Type":"UPDATE_PATH","Source":{{"Uuid":"u","Path":"{from}"}},"Target":{{"Uuid":"u","Path":"{to}"}}}}"#
            ),
            &ws,
        )
    };
    assert_eq!(
        moved("other/x", "pydiods1/x"),
        [
            r#"{"Target":{"Uuid":"u","Path":"common-files/x","MetaStore":{"EventWorkspaceId":"\"ws1\""}}}"#
        ]
    );
    assert_eq!(
        moved("pydiods1/x", "other/x"),
        [
            r#"{"Type":"DELETE","Source":{"Uuid":"u","Path":"common-files/x","MetaStore":{"EventWorkspaceId":"\"ws1\""}}}"#
        ]
    );
    assert!(moved("other/x", "other/y").is_empty());
}

#[test]
fn one_frame_per_workspace_that_sees_the_node() {
    let ws = workspaces(
        r#"[{"id":"a","slug":"all","roots":[{"uuid":"1","path":"ds"}]},
            {"id":"s","slug":"shared","roots":[{"uuid":"2","path":"ds/shared"}]},
            {"id":"m","slug":"multi","roots":[{"uuid":"3","path":"ds/shared","key":"sh"},{"uuid":"4","path":"ds2"}]},
            {"id":"o","slug":"other","roots":[{"uuid":"5","path":"elsewhere"}]}]"#,
    );
    let paths = |data: &str| -> Vec<String> {
        render(data, &ws)
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                format!(
                    "{} {}",
                    v["Target"]["Path"].as_str().unwrap(),
                    v["Target"]["MetaStore"]["EventWorkspaceId"]
                        .as_str()
                        .unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        paths(r#"{"Target":{"Uuid":"u","Path":"ds/shared/f.txt"}}"#),
        [
            r#"all/shared/f.txt "a""#,
            r#"shared/f.txt "s""#,
            r#"multi/sh/f.txt "m""#
        ]
    );
    let root = render(r#"{"Target":{"Uuid":"2","Path":"ds/shared"}}"#, &ws);
    assert!(
        root[1].contains(
            r#""Path":"shared","MetaStore":{"EventWorkspaceId":"\"s\"","ws_root":"true"}"#
        ),
        "{}",
        root[1]
    );
}

#[test]
fn deletes_carry_the_source_and_updates_need_the_target_seen() {
    let ws = workspaces(COMMON);
    assert_eq!(
        render(
            r#"{"Type":"DELETE","Source":{"Uuid":"u","Path":"pydiods1/x"}}"#,
            &ws
        ),
        [
            r#"{"Type":"DELETE","Source":{"Uuid":"u","Path":"common-files/x","MetaStore":{"EventWorkspaceId":"\"ws1\""}}}"#
        ]
    );
    assert!(
        render(
            r#"{"Type":"UPDATE_META","Target":{"Uuid":"u","Path":"other/x"}}"#,
            &ws
        )
        .is_empty()
    );
}

#[test]
fn shared_frames_and_activities() {
    assert_eq!(
        typed_frame("idm", r#"{"Type":"UPDATE"}"#),
        r#"{"@type":"idm","Type":"UPDATE"}"#
    );
    assert_eq!(typed_frame("idm", " { } "), r#"{"@type":"idm"}"#);
    let activity = Parsed::of(
        "cells:activity",
        r#"{"OwnerId":"alice","BoxName":"inbox","Activity":{"actor":{"id":"alice"}}}"#,
    );
    let alice = Login::parse("alice").unwrap();
    let bob = Login::parse("bob").unwrap();
    let mut out = Vec::new();
    activity.frames(Some(&alice), &[], &mut out);
    assert!(out.is_empty(), "the actor's own activity");
    activity.frames(Some(&bob), &[], &mut out);
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .as_str()
            .starts_with(r#"{"@type":"activity","OwnerId""#)
    );
    let mut nothing = Vec::new();
    let outbox = r#"{"OwnerId":"n","BoxName":"outbox","Activity":{}}"#;
    Parsed::of("cells:activity", outbox).frames(Some(&bob), &[], &mut nothing);
    assert!(nothing.is_empty(), "a node's outbox is delivered to no one");
    let mut none = Vec::new();
    Parsed::of("hello", "{}").frames(Some(&bob), &[], &mut none);
    assert!(none.is_empty(), "events of no Cells kind");
}
