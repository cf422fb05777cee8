package simulator

import (
	"slices"
	"strings"
)

// Person is a demo person of the simulated Entra ID tenant: someone who signs in to the service
// and whose Defender calls, made on-behalf-of them, see only the devices of their device groups
// (RBAC), as Defender does for delegated tokens.
type Person struct {
	// ID is the short name used by SignIn, POST /demo/signin and -print-tokens ("adele").
	ID string `json:"id"`
	// OID is the person's object id, the oid claim: with the tenant id it identifies the person.
	OID string `json:"oid"`
	// Name is the display name, the name claim.
	Name string `json:"name"`
	// UPN is the user principal name, the preferred_username claim (v2) or upn (v1).
	UPN string `json:"upn"`
	// RBACGroupIDs are the Defender device groups the person may see, by rbacGroupId; none
	// means the person sees no device at all.
	RBACGroupIDs []int `json:"rbacGroupIds"`
	// AppRoles are the service's app roles assigned to the person (the roles claim).
	AppRoles []string `json:"appRoles"`
	// ConsentMissing marks a person who never consented to the service's delegated access to
	// Defender: the on-behalf-of exchange of their token fails with AADSTS65001.
	ConsentMissing bool `json:"consentMissing"`
}

// CanSee reports whether the person's Defender calls see device m.
func (p Person) CanSee(m Machine) bool { return slices.Contains(p.RBACGroupIDs, m.RBACGroupID) }

func (p Person) clone() Person {
	p.RBACGroupIDs = slices.Clone(p.RBACGroupIDs)
	p.AppRoles = slices.Clone(p.AppRoles)
	return p
}

// App roles and delegated scopes of the service's own API (the audience of the tokens the
// simulator mints for demo persons).
const (
	// AppRoleRead is the app role a person needs to use the service.
	AppRoleRead = "Mdegraph.Read"
	// ScopeAccessAsUser is the delegated scope every demo sign-in grants (the scp claim).
	ScopeAccessAsUser = "access_as_user"
)

// The device groups of the data set, as rbacGroupId and rbacGroupName. Every device belongs to
// exactly one; group 0 holds the devices no rule assigned, and its name is null on the wire.
const (
	GroupUnassigned          = 0  // name null
	GroupWorkstations        = 12 // "Workstations"
	GroupWorkstationsFinance = 14 // "Workstations - Finance"
	GroupServers             = 21 // "Servers"
	GroupServersTier0        = 22 // "Servers - Tier 0" (domain controllers, certificate authorities)
	GroupLinuxServers        = 31 // "Linux servers"
	GroupMac                 = 41 // "Mac"
)

// groupNames are the rbacGroupName of each device group; group 0's is null on the wire.
var groupNames = map[int]string{
	GroupWorkstations: "Workstations", GroupWorkstationsFinance: "Workstations - Finance", GroupServers: "Servers",
	GroupServersTier0: "Servers - Tier 0", GroupLinuxServers: "Linux servers", GroupMac: "Mac",
}

// demoPersons are the tenant's people. Their object ids are fixed, so tests and bookmarks can
// name them; every one has a different set of device groups.
var demoPersons = []Person{
	{
		ID: "adele", OID: "f0c6e41f-d5c2-446a-b548-9e7ea4125d73", Name: "Adele Vance", UPN: "adele.vance@contoso.com",
		RBACGroupIDs: []int{GroupUnassigned, GroupWorkstations, GroupWorkstationsFinance, GroupServers, GroupServersTier0, GroupLinuxServers, GroupMac},
		AppRoles:     []string{AppRoleRead},
	},
	{
		ID: "megan", OID: "711d04a5-90cf-4fba-aa53-1ab9442278d2", Name: "Megan Bowen", UPN: "megan.bowen@contoso.com",
		RBACGroupIDs: []int{GroupWorkstations, GroupWorkstationsFinance, GroupMac},
		AppRoles:     []string{AppRoleRead},
	},
	{
		ID: "grady", OID: "25c0d6b9-b0d9-4825-b7a2-58f6c1c082dc", Name: "Grady Archie", UPN: "grady.archie@contoso.com",
		RBACGroupIDs: []int{GroupServers, GroupServersTier0, GroupLinuxServers},
		AppRoles:     []string{AppRoleRead},
	},
	{
		ID: "lee", OID: "14be5b72-9673-41ec-924b-98e03081ebc8", Name: "Lee Gu", UPN: "lee.gu@contoso.com",
		RBACGroupIDs: []int{GroupWorkstationsFinance},
		AppRoles:     []string{}, // lacks the service's app role
	},
	{
		ID: "nestor", OID: "4abbe79e-380f-4363-9d9b-112b738303fe", Name: "Nestor Wilke", UPN: "nestor.wilke@contoso.com",
		RBACGroupIDs: []int{}, // sees no device
		AppRoles:     []string{AppRoleRead},
	},
	{
		ID: "pradeep", OID: "2b5037a1-c91a-4859-94ba-379b920c335a", Name: "Pradeep Gupta", UPN: "pradeep.gupta@contoso.com",
		RBACGroupIDs:   []int{GroupWorkstations},
		AppRoles:       []string{AppRoleRead},
		ConsentMissing: true,
	},
}

// Persons returns a copy of the demo persons, in a fixed order:
//
//	id       name           device groups (rbacGroupId)          app role       note
//	adele    Adele Vance    all: 0, 12, 14, 21, 22, 31, 41        Mdegraph.Read  sees what the app sees
//	megan    Megan Bowen    12, 14, 41 (workstations, Macs)       Mdegraph.Read
//	grady    Grady Archie   21, 22, 31 (servers)                  Mdegraph.Read
//	lee      Lee Gu         14 (finance workstations)             none           for the service's FORBIDDEN
//	nestor   Nestor Wilke   none                                  Mdegraph.Read  sees no device
//	pradeep  Pradeep Gupta  12                                    Mdegraph.Read  OBO fails: consent missing
//
// UPNs are firstname.lastname@contoso.com.
func (s *Simulator) Persons() []Person {
	out := make([]Person, len(demoPersons))
	for i, p := range demoPersons {
		out[i] = p.clone()
	}
	return out
}

// Person finds a demo person by id, object id or UPN, compared case-insensitively.
func (s *Simulator) Person(key string) (Person, bool) {
	if p := findPerson(key); p != nil {
		return p.clone(), true
	}
	return Person{}, false
}

func findPerson(key string) *Person {
	key = strings.TrimSpace(key)
	for i := range demoPersons {
		p := &demoPersons[i]
		if strings.EqualFold(p.ID, key) || strings.EqualFold(p.OID, key) || strings.EqualFold(p.UPN, key) {
			return p
		}
	}
	return nil
}

// IdentityApp is the identity key, in EndpointStats.ByIdentity, of calls made with an
// application (client-credentials) token. Calls made with a person's token count under the
// person's object id.
const IdentityApp = "app"

// caller is who an accepted Defender token speaks for: the application, or a person.
type caller struct {
	person *Person // nil: the application itself
}

func (c caller) identity() string {
	if c.person == nil {
		return IdentityApp
	}
	return c.person.OID
}

// sees reports whether the caller may see device m.
func (c caller) sees(m *Machine) bool { return c.person == nil || c.person.CanSee(*m) }
