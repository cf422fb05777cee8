package resolvers

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
)

// toMachine maps Defender's machine to the GraphQL model; enum values the schema does not know
// become OTHER and are logged once.
func (r *Resolver) toMachine(ctx context.Context, m *defender.Machine) *model.Machine {
	out := &model.Machine{
		ID:                     m.ID,
		ComputerDNSName:        nonEmpty(m.ComputerDNSName),
		FirstSeen:              timePtr(m.FirstSeen),
		LastSeen:               timePtr(m.LastSeen),
		OsPlatform:             nonEmpty(m.OSPlatform),
		OsVersion:              m.OSVersion,
		OsProcessor:            m.OSProcessor,
		OsArchitecture:         m.OSArchitecture,
		Version:                m.Version,
		OsBuild:                intPtr(m.OSBuild),
		LastIPAddress:          m.LastIPAddress,
		LastExternalIPAddress:  m.LastExternalIPAddress,
		AgentVersion:           m.AgentVersion,
		HealthStatus:           enumOf(r, ctx, "healthStatus", m.HealthStatus, model.HealthStatusOther),
		OnboardingStatus:       enumOf(r, ctx, "onboardingStatus", m.OnboardingStatus, model.OnboardingStatusOther),
		RiskScore:              enumOf(r, ctx, "riskScore", m.RiskScore, model.RiskScoreOther),
		ExposureLevel:          enumOf(r, ctx, "exposureLevel", m.ExposureLevel, model.ExposureLevelOther),
		DeviceValue:            enumOf(r, ctx, "deviceValue", m.DeviceValue, model.DeviceValueOther),
		RbacGroupName:          m.RBACGroupName,
		IsAadJoined:            m.IsAADJoined,
		AadDeviceID:            m.AADDeviceID,
		MachineTags:            m.MachineTags,
		DefenderAvStatus:       m.DefenderAVStatus,
		ManagedBy:              m.ManagedBy,
		IsPotentialDuplication: m.IsPotentialDuplication,
		MergedIntoMachineID:    m.MergedIntoMachineID,
		IsExcluded:             m.IsExcluded,
		ExclusionReason:        m.ExclusionReason,
	}
	if m.RBACGroupID != nil {
		s := string(*m.RBACGroupID)
		out.RbacGroupID = &s
	}
	if out.MachineTags == nil {
		out.MachineTags = []string{}
	}
	out.IPAddresses = make([]*model.IPAddress, len(m.IPAddresses))
	for i, a := range m.IPAddresses {
		out.IPAddresses[i] = &model.IPAddress{IPAddress: a.IPAddress, MacAddress: a.MACAddress, Type: a.Type, OperationalStatus: a.OperationalStatus}
	}
	if v := m.VMMetadata; v != nil {
		out.VMMetadata = &model.VMMetadata{VMID: v.VMID, CloudProvider: v.CloudProvider, ResourceID: v.ResourceID, SubscriptionID: v.SubscriptionID}
	}
	return out
}

// toMachines maps a list of machines; their logonUsers and alerts are left to the field
// resolvers.
func (r *Resolver) toMachines(ctx context.Context, ms []defender.Machine) []*model.Machine {
	out := make([]*model.Machine, len(ms))
	for i := range ms {
		out[i] = r.toMachine(ctx, &ms[i])
	}
	return out
}

func toLogonUsers(users []defender.User) []*model.LogonUser {
	out := make([]*model.LogonUser, len(users))
	for i, u := range users {
		out[i] = toLogonUser(u)
	}
	return out
}

// toAlerts maps Defender's alerts; enum values the schema does not know become OTHER.
func (r *Resolver) toAlerts(ctx context.Context, alerts []defender.Alert) []*model.Alert {
	out := make([]*model.Alert, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		m := &model.Alert{
			ID:                a.ID,
			Severity:          enumOf(r, ctx, "alert.severity", a.Severity, model.AlertSeverityOther),
			Status:            enumOf(r, ctx, "alert.status", a.Status, model.AlertStatusOther),
			Classification:    enumOf(r, ctx, "alert.classification", a.Classification, model.AlertClassificationOther),
			Determination:     a.Determination,
			Category:          a.Category,
			Title:             a.Title,
			Description:       a.Description,
			DetectionSource:   a.DetectionSource,
			AlertCreationTime: timePtr(a.AlertCreationTime),
			FirstEventTime:    timePtr(a.FirstEventTime),
			LastEventTime:     timePtr(a.LastEventTime),
			LastUpdateTime:    timePtr(a.LastUpdateTime),
			ResolvedTime:      timePtr(a.ResolvedTime),
			MachineID:         a.MachineID,
			ComputerDNSName:   a.ComputerDNSName,
			ThreatName:        a.ThreatName,
			MitreTechniques:   a.MITRETechniques,
		}
		if m.MitreTechniques == nil {
			m.MitreTechniques = []string{}
		}
		if a.IncidentID != nil {
			id := strconv.FormatInt(int64(*a.IncidentID), 10)
			m.IncidentID = &id
		}
		if u := a.RelatedUser; u != nil {
			m.RelatedUser = &model.AlertUser{UserName: u.UserName, DomainName: u.DomainName}
		}
		out[i] = m
	}
	return out
}

func toLogonUser(u defender.User) *model.LogonUser {
	return &model.LogonUser{
		ID:                      u.ID,
		AccountName:             u.AccountName,
		AccountDomain:           u.AccountDomain,
		AccountSid:              u.AccountSID,
		FirstSeen:               timePtr(u.FirstSeen),
		LastSeen:                timePtr(u.LastSeen),
		LogonTypes:              u.LogonTypeList(),
		IsDomainAdmin:           u.IsDomainAdmin,
		IsOnlyNetworkUser:       u.IsOnlyNetworkUser,
		MostPrevalentMachineID:  u.MostPrevalentMachineID,
		LeastPrevalentMachineID: u.LeastPrevalentMachineID,
		LogOnMachinesCount:      intPtr(u.LogOnMachinesCount),
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func timePtr(t *defender.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}

func intPtr(n *defender.FlexInt) *int {
	if n == nil {
		return nil
	}
	v := int(*n)
	return &v
}

// graphQLEnum is what gqlgen generates for an enum.
type graphQLEnum interface {
	~string
	IsValid() bool
}

// enumOf maps Defender's spelling of an enum value (CamelCase, "ImpairedCommunication") to the
// schema's (IMPAIRED_COMMUNICATION), or, when that is no value, the value upper-cased
// (Defender's alert severity "UnSpecified" is UNSPECIFIED); an unknown value becomes other,
// never an error, so that a value Defender adds later cannot fail a response.
func enumOf[E graphQLEnum](r *Resolver, ctx context.Context, field string, v *string, other E) *E {
	if v == nil || *v == "" {
		return nil
	}
	e := E(upperSnake(*v))
	if !e.IsValid() {
		e = E(strings.ToUpper(*v))
	}
	if !e.IsValid() || e == other {
		r.noteUnknownEnum(ctx, field, *v)
		e = other
	}
	return &e
}

// upperSnake turns CamelCase into UPPER_SNAKE_CASE.
func upperSnake(s string) string {
	var b strings.Builder
	prevLower := false
	for _, c := range s {
		if unicode.IsUpper(c) && prevLower {
			b.WriteByte('_')
		}
		prevLower = unicode.IsLower(c) || unicode.IsDigit(c)
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

func (r *Resolver) noteUnknownEnum(ctx context.Context, field, value string) {
	if _, loaded := r.unknownEnums.LoadOrStore(field+"\x00"+value, true); loaded {
		return
	}
	r.logger().LogAttrs(ctx, slog.LevelWarn, "Defender sent an enum value this schema does not know; answering OTHER",
		slog.String("field", field), slog.String("value", value))
}
