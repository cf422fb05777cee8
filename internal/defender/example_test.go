package defender_test

import (
	"fmt"

	"github.com/mdegraph/mdegraph/internal/defender"
)

func ExampleParseMachineRef() {
	for _, s := range []string{"1E5BC9D7E413DDD7902C2932E418702B84D0CC07", "Host-1.Contoso.com", "../admin"} {
		ref, err := defender.ParseMachineRef(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(ref, ref.IsDeviceID())
	}
	// Output:
	// 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 true
	// host-1.contoso.com false
	// error: invalid id "../admin": is neither a 40-hex device id nor a computer DNS name (empty label)
}

func ExampleLookupCloud() {
	c, err := defender.LookupCloud("gcc-high")
	if err != nil {
		panic(err)
	}
	fmt.Println(c.APIURL)
	fmt.Println(c.TokenURL("contoso.onmicrosoft.com"))
	// Output:
	// https://api-gov.securitycenter.microsoft.us
	// https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token
}
