package tenant

import "github.com/artcafe-ai/pubsub/contracts/natsrpc"

// validRole reports one of the four tenant roles.
func validRole(role string) bool { return natsrpc.RoleRank(role) > 0 }

// canManageMembers: admins and owners manage members; API keys never do (SPEC §13: the
// member routes are for people).
func canManageMembers(actor Actor, actorRole string) error {
	if actor.Kind != natsrpc.KindUser {
		return errorf(ErrForbidden, "only users may manage members")
	}
	if natsrpc.RoleRank(actorRole) < natsrpc.RoleRank(natsrpc.RoleAdmin) {
		return errorf(ErrForbidden, "managing members needs the admin or owner role")
	}
	return nil
}

// checkRoleChange says whether a manager with actorRole may give role to a member that
// has role from ("" for a new member): only an owner grants, changes or takes away the
// owner role, and nobody grants a role above their own.
func checkRoleChange(actorRole, from, to string) error {
	if !validRole(to) {
		return &ValidationError{Field: "role", Message: "must be one of owner, admin, member, viewer"}
	}
	if (from == natsrpc.RoleOwner || to == natsrpc.RoleOwner) && actorRole != natsrpc.RoleOwner {
		return errorf(ErrForbidden, "only an owner may grant, change or remove the owner role")
	}
	if natsrpc.RoleRank(to) > natsrpc.RoleRank(actorRole) {
		return errorf(ErrForbidden, "you cannot grant a role above your own")
	}
	return nil
}

// checkRemoval says whether a manager with actorRole may remove a member with role.
func checkRemoval(actorRole, role string) error {
	if role == natsrpc.RoleOwner && actorRole != natsrpc.RoleOwner {
		return errorf(ErrForbidden, "only an owner may remove an owner")
	}
	return nil
}
