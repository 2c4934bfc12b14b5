//! CreateAcls, DescribeAcls and DeleteAcls, versions 1-3 (flexible from v2; v0 is not in
//! the `kafka-protocol` crate).

use super::*;
use kafka_protocol::messages::{create_acls_request as ca, delete_acls_request as da};
use std::mem::size_of;

static ACL_CREATION: StructSchema = StructSchema {
    name: "AclCreation",
    fields: &[
        field("resource_type", Versions::ALL, INT8),
        field("resource_name", Versions::ALL, STRING),
        field("resource_pattern_type", from(1), INT8),
        field("principal", Versions::ALL, STRING),
        field("host", Versions::ALL, STRING),
        field("operation", Versions::ALL, INT8),
        field("permission_type", Versions::ALL, INT8),
    ],
    tagged: &[],
};

static CREATE_ACLS_BODY: StructSchema = StructSchema {
    name: "CreateAclsRequest",
    fields: &[field(
        "creations",
        Versions::ALL,
        structs(&ACL_CREATION, size_of::<ca::AclCreation>()),
    )],
    tagged: &[],
};

pub static CREATE_ACLS: MessageSchema = MessageSchema {
    api: ApiKey::CreateAcls,
    versions: range(1, 3),
    flexible: from(2),
    body: &CREATE_ACLS_BODY,
};

/// The filter fields DescribeAcls has at its top level and DeleteAcls per filter.
const FILTER_FIELDS: &[Field] = &[
    field("resource_type_filter", Versions::ALL, INT8),
    field("resource_name_filter", Versions::ALL, NULLABLE_STRING),
    field("pattern_type_filter", from(1), INT8),
    field("principal_filter", Versions::ALL, NULLABLE_STRING),
    field("host_filter", Versions::ALL, NULLABLE_STRING),
    field("operation", Versions::ALL, INT8),
    field("permission_type", Versions::ALL, INT8),
];

static DESCRIBE_ACLS_BODY: StructSchema = StructSchema {
    name: "DescribeAclsRequest",
    fields: FILTER_FIELDS,
    tagged: &[],
};

pub static DESCRIBE_ACLS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeAcls,
    versions: range(1, 3),
    flexible: from(2),
    body: &DESCRIBE_ACLS_BODY,
};

static DELETE_ACLS_FILTER: StructSchema = StructSchema {
    name: "DeleteAclsFilter",
    fields: FILTER_FIELDS,
    tagged: &[],
};

static DELETE_ACLS_BODY: StructSchema = StructSchema {
    name: "DeleteAclsRequest",
    fields: &[field(
        "filters",
        Versions::ALL,
        structs(&DELETE_ACLS_FILTER, size_of::<da::DeleteAclsFilter>()),
    )],
    tagged: &[],
};

pub static DELETE_ACLS: MessageSchema = MessageSchema {
    api: ApiKey::DeleteAcls,
    versions: range(1, 3),
    flexible: from(2),
    body: &DELETE_ACLS_BODY,
};
