#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    Unit tests of the Cowork resources (psgen/resources/cowork.py, templates/resources/*.ps1.j2).
    The resource functions are taken from the generated Cowork scripts WITHOUT running a plan (each
    script is parsed and its function definitions are dot-sourced here), and the Windows commands
    they call are mocked, so this runs on any Windows machine, without Hyper-V or Claude Cowork.
    A few read-only checks of the real machine run only where Hyper-V networking or Cowork is.
    NOT RUN on psgen's own Linux CI; run by .github/workflows/windows.yml.

    python -m psgen.demo out      (writes out/cowork/*.ps1, among others)
    Invoke-Pester -Path tests/pester/Cowork.Tests.ps1 -Output Detailed
#>

BeforeDiscovery {
    # What no mock can show is checked only where the machine has it (skipped elsewhere): the
    # Hyper-V host networking service with its PowerShell module, and Cowork's own service.
    $hnsService = Get-Service -Name 'hns' -ErrorAction SilentlyContinue
    $hnsModule = Get-Command -Name 'Get-HnsNetwork' -ErrorAction SilentlyContinue
    $hasHyperV = $null -ne $hnsService -and [string]$hnsService.Status -eq 'Running' -and $null -ne $hnsModule
    $hasCowork = $null -ne (Get-Service -Name 'CoworkVMService' -ErrorAction SilentlyContinue)
}

BeforeAll {
    $script:OutFolder = Join-Path -Path $PSScriptRoot -ChildPath '..\..\out\cowork'
    $script:ScriptNames = @('repair-network', 'reset-session-disk', 'fix-wsl-conflict', 'doctor')
    # Every Cowork resource by noun (Get-Psgen<Noun>, Test-Psgen<Noun>); the changing ones also
    # have Set- and Restore-, the read-only findings never do.
    $script:Changing = @(
        'AppClosed', 'DnsServerList', 'WinNatRule', 'HnsNetworkAbsent', 'ServiceRunning', 'SessionDiskReset'
    )
    $script:Findings = @(
        'LogPattern', 'VirtualizationState', 'TunnelAdapter', 'ProxySetting', 'FreeDiskSpace', 'VhdxAttribute'
    )
    $script:FunctionText = @{}
    $script:FunctionSource = @{}
    $script:ScriptFunctions = @{}
    $script:CompiledSteps = New-Object -TypeName 'System.Collections.Generic.List[object]'
    $script:Mismatch = New-Object -TypeName 'System.Collections.Generic.List[string]'

    # Parse each generated script and define its top-level functions in this scope. The plan
    # itself never runs: only the function definitions are taken.
    foreach ($loadName in $script:ScriptNames) {
        $loadPath = Join-Path -Path $script:OutFolder -ChildPath ('{0}.ps1' -f $loadName)
        $loadPath = (Resolve-Path -LiteralPath $loadPath -ErrorAction Stop).Path
        $loadTokens = $null
        $loadErrors = $null
        $loadAst = [System.Management.Automation.Language.Parser]::ParseFile(
            $loadPath, [ref]$loadTokens, [ref]$loadErrors)
        if (@($loadErrors).Count -gt 0) {
            throw ('{0} does not parse: {1}' -f $loadPath, $loadErrors[0].Message)
        }
        $loadNames = New-Object -TypeName 'System.Collections.Generic.List[string]'
        foreach ($loadStatement in $loadAst.EndBlock.Statements) {
            if ($loadStatement -is [System.Management.Automation.Language.FunctionDefinitionAst]) {
                $loadNames.Add($loadStatement.Name)
                $loadText = $loadStatement.Extent.Text
                if (-not $script:FunctionText.ContainsKey($loadStatement.Name)) {
                    . ([scriptblock]::Create($loadText))
                    $script:FunctionText[$loadStatement.Name] = $loadText
                    $script:FunctionSource[$loadStatement.Name] = $loadName
                }
                elseif ($script:FunctionText[$loadStatement.Name] -cne $loadText) {
                    $script:Mismatch.Add(('{0} differs between {1} and {2}' -f $loadStatement.Name,
                            $script:FunctionSource[$loadStatement.Name], $loadName))
                }
            }
            elseif ($loadStatement -is [System.Management.Automation.Language.AssignmentStatementAst] -and
                $loadStatement.Left.Extent.Text -eq '$PsgenSteps') {
                # The step table: the Property keys psgen compiles for each resource's Get.
                $loadTables = $loadStatement.FindAll({
                        param($node)
                        $node -is [System.Management.Automation.Language.HashtableAst]
                    }, $true)
                foreach ($loadTable in $loadTables) {
                    $loadPairs = @{}
                    foreach ($loadPair in $loadTable.KeyValuePairs) {
                        $loadPairs[$loadPair.Item1.Extent.Text] = $loadPair.Item2
                    }
                    if ($loadPairs.ContainsKey('Get') -and $loadPairs.ContainsKey('Property')) {
                        $loadProperty = $loadPairs['Property'].Find({
                                param($node)
                                $node -is [System.Management.Automation.Language.HashtableAst]
                            }, $true)
                        $loadKeys = @($loadProperty.KeyValuePairs | ForEach-Object -Process {
                                $_.Item1.Extent.Text
                            })
                        $script:CompiledSteps.Add([pscustomobject]@{
                                Script = $loadName
                                Get = $loadPairs['Get'].Extent.Text.Trim("'")
                                PropertyKeys = (@($loadKeys | Sort-Object) -join ',')
                            })
                    }
                }
            }
        }
        $script:ScriptFunctions[$loadName] = $loadNames.ToArray()
    }

    # Stubs for commands this Windows may lack (the HNS module without Hyper-V, NetNat on some
    # editions), so that Mock has a command to replace. A stub throws: every test mocks it.
    $loadStubs = [ordered]@{
        'Get-HnsNetwork' = '[string]$Id'
        'Remove-HnsNetwork' = '[Parameter(ValueFromPipeline = $true)][object[]]$InputObjects'
        'Get-NetNat' = '[string[]]$Name'
        'New-NetNat' = '[string]$Name, [string]$InternalIPInterfaceAddressPrefix'
        'Remove-NetNat' = '[string[]]$Name'
        'Get-DnsClientServerAddress' = '[uint32[]]$InterfaceIndex, [string]$AddressFamily'
        'Set-DnsClientServerAddress' = (
            '[uint32[]]$InterfaceIndex, [string[]]$ServerAddresses, [switch]$ResetServerAddresses'
        )
        'Clear-DnsClientCache' = ''
        'Get-NetAdapter' = '[uint32[]]$InterfaceIndex, [switch]$IncludeHidden'
        'Get-NetRoute' = '[string[]]$DestinationPrefix'
        'Get-NetIPInterface' = '[uint32[]]$InterfaceIndex, [string]$AddressFamily'
        'Get-NetIPAddress' = '[string]$AddressFamily'
    }
    foreach ($loadStub in $loadStubs.GetEnumerator()) {
        if (-not (Get-Command -Name $loadStub.Key -ErrorAction SilentlyContinue)) {
            $loadText = 'function {0} {{ [CmdletBinding(SupportsShouldProcess = $true)] param({1}) ' -f
                $loadStub.Key, $loadStub.Value
            $loadText += 'process {{ throw ''{0} is a stub in this test: mock it.'' }} }}' -f $loadStub.Key
            . ([scriptblock]::Create($loadText))
        }
    }
    # Nothing of the loading stays visible to the functions under test (StrictMode must catch
    # a template that reads a variable it never set).
    Remove-Variable -Name 'load*' -ErrorAction SilentlyContinue

    # The real commands, for mocks that replace one call and let the others through.
    $script:RealTestPath = Get-Command -Name 'Test-Path' -CommandType Cmdlet
    $script:RealJoinPath = Get-Command -Name 'Join-Path' -CommandType Cmdlet
    $script:RealGetCommand = Get-Command -Name 'Get-Command' -CommandType Cmdlet

    # The Property dictionaries psgen compiles into each step (keys checked against the step
    # tables of the generated scripts below), with the plans' default values.
    $ignorePaths = @('*\.local\bin\claude.exe')
    $script:Defaults = @{
        AppClosed = [ordered]@{
            App = 'Claude'
            Processes = @('claude')
            IgnorePaths = $ignorePaths
        }
        DnsServerList = [ordered]@{
            Interface = 'vEthernet (cowork-vm*)'
            Servers = @()
            ClearCache = $true
        }
        WinNatRule = [ordered]@{
            HnsNetwork = 'cowork-vm*'
            Interface = 'vEthernet (cowork-vm*)'
            NatName = ''
        }
        HnsNetworkAbsent = [ordered]@{
            Network = 'cowork-vm*'
            NetworkType = 'NAT'
            Service = 'CoworkVMService'
            WaitSeconds = 60
            App = 'Claude'
            AppsClosed = @('claude')
            IgnorePaths = $ignorePaths
        }
        ServiceRunning = [ordered]@{
            Service = 'CoworkVMService'
            RestartAfterChanges = $true
            App = 'Claude'
            AppsClosed = @('claude')
            IgnorePaths = $ignorePaths
            TimeoutSeconds = 60
        }
        SessionDiskReset = [ordered]@{
            ServiceLog = '%ProgramData%\Claude\Logs\cowork-service.log'
            Bundles = @(
                '%LOCALAPPDATA%\Packages\Claude_*\LocalCache\Roaming\Claude\vm_bundles\claudevm.bundle',
                '%APPDATA%\Claude\vm_bundles\claudevm.bundle'
            )
            Disk = 'sessiondata.vhdx'
            Symptoms = @('not a mount point', 'failed to unmount host share', 'host share not mounted')
            Logs = @(
                '%LOCALAPPDATA%\Packages\Claude_*\LocalCache\Roaming\Claude\logs\cowork_vm_node.log',
                '%APPDATA%\Claude\logs\cowork_vm_node.log',
                '%ProgramData%\Claude\Logs\cowork-service.log'
            )
            TailLines = 5000
            Service = 'CoworkVMService'
            App = 'Claude'
            AppsClosed = @('claude')
            IgnorePaths = $ignorePaths
            WaitSeconds = 180
        }
        LogPattern = [ordered]@{
            Paths = @(
                '%LOCALAPPDATA%\Packages\Claude_*\LocalCache\Roaming\Claude\logs\cowork_vm_node.log',
                '%APPDATA%\Claude\logs\cowork_vm_node.log'
            )
            Pattern = 'API reachability: (PROBABLY_)?UNREACHABLE'
            ClearedBy = 'API reachability: REACHABLE'
            Expect = 'absent'
            TailLines = 5000
        }
        VirtualizationState = [ordered]@{
            Features = @('VirtualMachinePlatform', 'HypervisorPlatform')
            HypervisorPresent = $true
        }
        TunnelAdapter = [ordered]@{
            Patterns = @(
                '*WireGuard*', '*Wintun*', '*TAP-Windows*', '*AnyConnect*', '*Cisco*VPN*', '*GlobalProtect*',
                '*PANGP*', '*Fortinet*', '*FortiClient*', '*Zscaler*', '*Cloudflare*', '*WARP*', '*Tailscale*',
                '*ZeroTier*', '*OpenVPN*', '*NordLynx*'
            )
        }
        ProxySetting = [ordered]@{
            Variables = @('HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY')
        }
        FreeDiskSpace = [ordered]@{
            Path = '%LOCALAPPDATA%'
            MinGb = 10
        }
        VhdxAttribute = [ordered]@{
            ServiceLog = '%ProgramData%\Claude\Logs\cowork-service.log'
            Bundles = @(
                '%LOCALAPPDATA%\Packages\Claude_*\LocalCache\Roaming\Claude\vm_bundles\claudevm.bundle',
                '%APPDATA%\Claude\vm_bundles\claudevm.bundle'
            )
        }
    }
    Remove-Variable -Name 'ignorePaths'

    function New-TestProperty {
        param(
            [Parameter(Mandatory = $true)]
            [string]$Noun,

            [hashtable]$With = @{}
        )
        # A fresh copy of a step's Property, with some values replaced.
        if (-not $script:Defaults.ContainsKey($Noun)) {
            throw ('No Property defaults for {0}.' -f $Noun)
        }
        $property = [ordered]@{}
        foreach ($key in $script:Defaults[$Noun].Keys) {
            $property[$key] = $script:Defaults[$Noun][$key]
        }
        foreach ($key in $With.Keys) {
            if (-not $property.Contains($key)) {
                throw ('{0} has no Property {1}.' -f $Noun, $key)
            }
            $property[$key] = $With[$key]
        }
        return $property
    }

    function Assert-StateRoundTrip {
        param(
            [Parameter(Mandatory = $true)]
            [string]$Noun,

            [Parameter(Mandatory = $true)]
            [System.Collections.IDictionary]$Property,

            [Parameter(Mandatory = $true)]
            [System.Collections.IDictionary]$State,

            [switch]$NoRestore
        )
        # -Mode Rollback reads the state back from the journal: from its JSON text (ConvertFrom-Json
        # gives objects, not dictionaries) and from its typed CliXml copy (PSSerializer, as the
        # runtime writes it). Each copy gives the same Test result and a Restore that works from
        # it, with StrictMode on as in the generated scripts.
        Set-StrictMode -Version 3.0
        $State.Contains('PsgenSkip') | Should -BeTrue
        $State.Contains('PsgenDetail') | Should -BeTrue
        $json = ConvertTo-Json -InputObject $State -Depth 12
        $json | Should -Not -Match 'System\.Collections'
        $copy = $json | ConvertFrom-Json
        $xml = [System.Management.Automation.PSSerializer]::Serialize($State, 12)
        $typed = [System.Management.Automation.PSSerializer]::Deserialize($xml)
        $live = & ('Test-Psgen{0}' -f $Noun) -Property $Property -State $State
        $live | Should -BeOfType ([bool])
        foreach ($read in @($copy, $typed)) {
            $again = & ('Test-Psgen{0}' -f $Noun) -Property $Property -State $read
            $again | Should -BeOfType ([bool])
            $again | Should -Be $live
        }
        [string]$copy.PsgenSkip | Should -BeExactly ([string]$State.PsgenSkip)
        [string]$copy.PsgenDetail | Should -BeExactly ([string]$State.PsgenDetail)
        $restore = 'Restore-Psgen{0}' -f $Noun
        if (-not $NoRestore -and $script:FunctionText.ContainsKey($restore)) {
            $null = & $restore -Property $Property -State $copy -Confirm:$false
            $null = & $restore -Property $Property -State $typed -Confirm:$false
        }
        return $copy
    }

    function New-FakeHnsNetwork {
        param(
            [Parameter(Mandatory = $true)]
            [string]$Name,

            [string]$Type = 'NAT',

            [string[]]$Subnet = @(),

            [string]$Id = ([guid]::NewGuid().ToString().ToUpperInvariant())
        )
        # What Get-HnsNetwork returns: Id, Name, Type and Subnets with an AddressPrefix each.
        $subnets = @($Subnet | ForEach-Object -Process { [pscustomobject]@{ AddressPrefix = $_ } })
        return [pscustomobject]@{
            Id = $Id
            Name = $Name
            Type = $Type
            Subnets = $subnets
        }
    }

    function Get-FakeNatText {
        param(
            [Parameter(Mandatory = $true)]
            [hashtable]$Table
        )
        # The in-memory NAT table of a test as 'name=prefix,...'.
        $rules = @($Table.Rules | ForEach-Object -Process {
                '{0}={1}' -f $_.Name, $_.InternalIPInterfaceAddressPrefix
            })
        return ($rules -join ',')
    }

    function New-FakeProcess {
        param(
            [int]$Id = 4242,

            [AllowEmptyString()]
            [string]$Path = 'C:\Users\pat\AppData\Local\AnthropicClaude\app-1.0.0\claude.exe'
        )
        # A claude process as Get-Process shows it; an empty Path is one that cannot be read.
        return [pscustomobject]@{
            ProcessName = 'claude'
            Id = $Id
            Path = $Path
        }
    }
}

Describe 'Cowork resources: functions of the generated scripts, Windows commands mocked' {
    BeforeEach {
        # As in the generated scripts.
        Set-StrictMode -Version 3.0
    }

    Context 'loading the functions without running a plan' {
        It 'has Get- and Test- for every resource, and Set- and Restore- only for the changing ones' {
            foreach ($noun in $script:Changing) {
                foreach ($verb in @('Get', 'Test', 'Set', 'Restore')) {
                    $name = '{0}-Psgen{1}' -f $verb, $noun
                    $script:FunctionText.ContainsKey($name) | Should -BeTrue -Because $name
                }
            }
            foreach ($noun in $script:Findings) {
                foreach ($verb in @('Get', 'Test')) {
                    $name = '{0}-Psgen{1}' -f $verb, $noun
                    $script:FunctionText.ContainsKey($name) | Should -BeTrue -Because $name
                }
                foreach ($verb in @('Set', 'Restore')) {
                    $name = '{0}-Psgen{1}' -f $verb, $noun
                    $script:FunctionText.ContainsKey($name) | Should -BeFalse -Because $name
                }
            }
        }

        It 'finds the same text for a function in every script that holds it' {
            $script:Mismatch.Count | Should -Be 0 -Because ($script:Mismatch -join '; ')
        }

        It 'the check-only doctor script holds no Set- or Restore- function' {
            $changers = @($script:ScriptFunctions['doctor'] | Where-Object -FilterScript {
                    $_ -like 'Set-Psgen*' -or $_ -like 'Restore-Psgen*'
                })
            $changers.Count | Should -Be 0 -Because ($changers -join ', ')
        }

        It 'builds each Property with exactly the keys psgen compiles into the step table' {
            $script:CompiledSteps.Count | Should -BeGreaterThan 0
            $seen = @{}
            foreach ($step in $script:CompiledSteps) {
                $noun = $step.Get -replace '^Get-Psgen', ''
                $seen[$noun] = $true
                $expected = @((New-TestProperty -Noun $noun).Keys | Sort-Object) -join ','
                $step.PropertyKeys | Should -BeExactly $expected -Because ('{0} in {1}' -f $step.Get, $step.Script)
            }
            foreach ($noun in ($script:Changing + $script:Findings)) {
                $seen.ContainsKey($noun) | Should -BeTrue -Because ('a compiled step uses Get-Psgen{0}' -f $noun)
            }
        }
    }

    Context 'shared helpers' {
        It 'ConvertTo-PsgenIPv4Prefix: <Address>/<Length> is in <Expected>' -ForEach @(
            @{ Address = '172.17.0.1'; Length = 24; Expected = '172.17.0.0/24' }
            @{ Address = '172.29.18.7'; Length = 20; Expected = '172.29.16.0/20' }
            @{ Address = '10.1.2.3'; Length = 32; Expected = '10.1.2.3/32' }
            @{ Address = '10.1.2.3'; Length = 0; Expected = '0.0.0.0/0' }
        ) {
            ConvertTo-PsgenIPv4Prefix -Address $Address -Length $Length | Should -BeExactly $Expected
        }

        It 'ConvertTo-PsgenList drops $null and empty strings, whatever shape JSON gave a list' {
            (ConvertTo-PsgenList -Value $null).Count | Should -Be 0
            (ConvertTo-PsgenList -Value '').Count | Should -Be 0
            (ConvertTo-PsgenList -Value 'one').Count | Should -Be 1
            $json = '{"none": [], "one": ["a"], "two": ["a", "b"]}' | ConvertFrom-Json
            (ConvertTo-PsgenList -Value $json.none).Count | Should -Be 0
            (ConvertTo-PsgenList -Value $json.one).Count | Should -Be 1
            (ConvertTo-PsgenList -Value $json.two).Count | Should -Be 2
        }

        It 'ConvertFrom-PsgenLogTime reads the service''s and the app''s timestamps' {
            $expected = New-Object -TypeName 'DateTime' -ArgumentList 2026, 4, 15, 9, 58, 44
            ConvertFrom-PsgenLogTime -Line '2026-04-15 09:58:44.707837 [Server] Bundle: C:\x' |
                Should -Be $expected
            # A trailing Z is UTC: compared in local time like the other log lines.
            $utc = New-Object -TypeName 'DateTime' -ArgumentList 2026, 4, 15, 9, 58, 44, ([DateTimeKind]::Utc)
            ConvertFrom-PsgenLogTime -Line '[2026-04-15T09:58:44.120Z] [error] x' |
                Should -Be $utc.ToLocalTime()
            ConvertFrom-PsgenLogTime -Line 'no time on this line' | Should -BeNullOrEmpty
        }

        It 'Get-PsgenLastChangeUtc takes the newest change of this run that was not undone' {
            $script:PsgenJournal = New-Object -TypeName 'System.Collections.ArrayList'
            $null = $script:PsgenJournal.Add([ordered]@{
                    step = 'vm-dns'
                    status = 'applied'
                    startedUtc = '2026-04-15T09:58:44Z'
                })
            $null = $script:PsgenJournal.Add([ordered]@{
                    step = 'winnat'
                    status = 'restored'
                    startedUtc = '2026-04-15T10:30:00Z'
                })
            $null = $script:PsgenJournal.Add([ordered]@{
                    step = 'service-restart'
                    status = 'applying'
                    startedUtc = '2026-04-15T10:00:01Z'
                })
            try {
                Get-PsgenLastChangeUtc | Should -BeExactly '20260415100001'
            }
            finally {
                Remove-Variable -Name 'PsgenJournal' -Scope 'Script' -ErrorAction SilentlyContinue
            }
            Get-PsgenLastChangeUtc | Should -BeExactly ''
        }

        It 'Wait-PsgenServiceStatus says which state the service did not reach in time' {
            $fakeController = [pscustomobject]@{ Name = 'CoworkVMService' }
            Add-Member -InputObject $fakeController -MemberType 'ScriptMethod' -Name 'WaitForStatus' -Value {
                throw 'Time out has expired and the operation has not been completed.'
            }
            Mock -CommandName 'Get-Service' -MockWith { $fakeController }
            { Wait-PsgenServiceStatus -Name 'CoworkVMService' -Status 'Running' -TimeoutSeconds 5 } |
                Should -Throw -ExpectedMessage '*did not reach the state Running within 5 seconds*'
        }
    }

    Context 'app_closed: a gate that refuses while Claude runs' {
        BeforeEach {
            $fakeApps = @{ Running = @() }
            Mock -CommandName 'Get-Process' -MockWith { $fakeApps.Running }
            $prop = New-TestProperty -Noun 'AppClosed'
        }

        It 'Claude running: Test is false and PsgenDetail says so in plain words' {
            $fakeApps.Running = @(New-FakeProcess -Id 4242)
            $state = Get-PsgenAppClosed -Property $prop
            Test-PsgenAppClosed -Property $prop -State $state | Should -BeFalse
            $state.PsgenDetail | Should -BeExactly 'Claude is open: claude (process 4242).'
            $state.PsgenSkip | Should -BeExactly ''
            { Set-PsgenAppClosed -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*Claude is still open*Nothing was changed.*'
        }

        It 'ignores Claude Code (claude.exe under .local\bin): Test is true' {
            $fakeApps.Running = @(New-FakeProcess -Path 'C:\Users\pat\.local\bin\claude.exe')
            $state = Get-PsgenAppClosed -Property $prop
            @($state.Running).Count | Should -Be 0
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenAppClosed -Property $prop -State $state | Should -BeTrue
            { Set-PsgenAppClosed -Property $prop -State $state -Confirm:$false } | Should -Not -Throw
        }

        It 'counts a claude process whose path cannot be read (another user''s)' {
            $fakeApps.Running = @(
                (New-FakeProcess -Id 7 -Path 'C:\Users\pat\.local\bin\claude.exe'),
                (New-FakeProcess -Id 8 -Path '')
            )
            $state = Get-PsgenAppClosed -Property $prop
            @($state.Running).Count | Should -Be 1
            $state.Running[0] | Should -BeExactly 'claude (process 8)'
            Test-PsgenAppClosed -Property $prop -State $state | Should -BeFalse
        }

        It 'its state survives the journal (JSON and CliXml): same Test, a working Restore' {
            $fakeApps.Running = @(New-FakeProcess)
            $state = Get-PsgenAppClosed -Property $prop
            $null = Assert-StateRoundTrip -Noun 'AppClosed' -Property $prop -State $state
        }
    }

    Context 'dns_servers: DNS servers of the VM adapter' {
        BeforeEach {
            $fakeDns = @{
                Rows = @(
                    [pscustomobject]@{
                        InterfaceAlias = 'vEthernet (cowork-vm-nat)'
                        InterfaceIndex = 42
                        AddressFamily = 2
                        ServerAddresses = @('10.9.9.9')
                    },
                    [pscustomobject]@{
                        InterfaceAlias = 'vEthernet (cowork-vm-nat)'
                        InterfaceIndex = 42
                        AddressFamily = 23
                        ServerAddresses = @('fec0:0:0:ffff::1', 'fec0:0:0:ffff::2', 'fec0:0:0:ffff::3')
                    },
                    [pscustomobject]@{
                        InterfaceAlias = 'Ethernet'
                        InterfaceIndex = 7
                        AddressFamily = 2
                        ServerAddresses = @('192.168.1.1')
                    }
                )
                # The interface's registry NameServer value per stack: typed-in servers; '' is DHCP.
                NameServer = @{
                    Tcpip = '10.9.9.9'
                    Tcpip6 = ''
                }
            }
            Mock -CommandName 'Get-DnsClientServerAddress' -MockWith { $fakeDns.Rows }
            Mock -CommandName 'Get-DnsClientServerAddress' -ParameterFilter {
                $null -ne $InterfaceIndex
            } -MockWith {
                $fakeDns.Rows | Where-Object -FilterScript {
                    $InterfaceIndex -contains $_.InterfaceIndex -and $_.AddressFamily -eq 2
                }
            }
            Mock -CommandName 'Get-NetAdapter' -MockWith {
                [pscustomobject]@{
                    Name = 'vEthernet (cowork-vm-nat)'
                    InterfaceGuid = '{0E8B6C1A-2F3D-4E5F-8A9B-0C1D2E3F4A5B}'
                }
            }
            Mock -CommandName 'Test-Path' -MockWith { & $script:RealTestPath @PesterBoundParameters }
            Mock -CommandName 'Test-Path' -ParameterFilter {
                [string]$LiteralPath -like 'HKLM:\SYSTEM\CurrentControlSet\Services\Tcpip*'
            } -MockWith { $true }
            Mock -CommandName 'Get-ItemProperty' -MockWith {
                $fakeStack = 'Tcpip'
                if ([string]$LiteralPath -like '*\Tcpip6\*') {
                    $fakeStack = 'Tcpip6'
                }
                [pscustomobject]@{ NameServer = $fakeDns.NameServer[$fakeStack] }
            }
            Mock -CommandName 'Get-NetRoute' -MockWith {
                [pscustomobject]@{ InterfaceIndex = 42; RouteMetric = 0 }
                [pscustomobject]@{ InterfaceIndex = 7; RouteMetric = 0 }
            }
            Mock -CommandName 'Get-NetIPInterface' -MockWith {
                if ($InterfaceIndex -contains 7) {
                    [pscustomobject]@{
                        InterfaceAlias = 'Ethernet'
                        InterfaceIndex = 7
                        ConnectionState = 'Connected'
                        InterfaceMetric = 25
                    }
                }
                elseif ($InterfaceIndex -contains 42) {
                    [pscustomobject]@{
                        InterfaceAlias = 'vEthernet (cowork-vm-nat)'
                        InterfaceIndex = 42
                        ConnectionState = 'Connected'
                        InterfaceMetric = 5000
                    }
                }
            }
            # Sets the IPv4 list of the fake adapter; -ResetServerAddresses (DHCP) empties it.
            Mock -CommandName 'Set-DnsClientServerAddress' -MockWith {
                $fakeServers = @()
                if (-not $PesterBoundParameters.ContainsKey('ResetServerAddresses')) {
                    $fakeServers = @($PesterBoundParameters['ServerAddresses'] | Where-Object -FilterScript {
                            $_ -notmatch ':'
                        })
                }
                foreach ($fakeRow in $fakeDns.Rows) {
                    if ($InterfaceIndex -contains $fakeRow.InterfaceIndex -and $fakeRow.AddressFamily -eq 2) {
                        $fakeRow.ServerAddresses = $fakeServers
                    }
                }
            }
            Mock -CommandName 'Clear-DnsClientCache' -MockWith { @() }
            $prop = New-TestProperty -Noun 'DnsServerList'
        }

        It 'captures IPv4 and IPv6 servers, and whether each family was typed in (static)' {
            $state = Get-PsgenDnsServerList -Property $prop
            $state.PsgenSkip | Should -BeExactly ''
            @($state.Adapters).Count | Should -Be 1
            $adapter = $state.Adapters[0]
            $adapter.Alias | Should -BeExactly 'vEthernet (cowork-vm-nat)'
            $adapter.Index | Should -Be 42
            ($adapter.IPv4 -join ',') | Should -BeExactly '10.9.9.9'
            @($adapter.IPv6).Count | Should -Be 3
            $adapter.IPv4Static | Should -BeTrue
            $adapter.IPv6Static | Should -BeFalse
            ($state.Wanted -join ',') | Should -BeExactly '192.168.1.1'
            $state.WantedFrom | Should -BeExactly 'the main internet connection (Ethernet)'
            Test-PsgenDnsServerList -Property $prop -State $state | Should -BeFalse
        }

        It 'DHCP: servers that came from DHCP (registry NameServer empty) are not static' {
            $fakeDns.NameServer.Tcpip = ''
            $state = Get-PsgenDnsServerList -Property $prop
            ($state.Adapters[0].IPv4 -join ',') | Should -BeExactly '10.9.9.9'
            $state.Adapters[0].IPv4Static | Should -BeFalse
        }

        It 'without the adapter''s registry key, any server but the fec0 stubs counts as typed in' {
            Mock -CommandName 'Get-NetAdapter' -MockWith { @() }
            $state = Get-PsgenDnsServerList -Property $prop
            $state.Adapters[0].Guid | Should -BeExactly ''
            $state.Adapters[0].IPv4Static | Should -BeTrue
            $state.Adapters[0].IPv6Static | Should -BeFalse
        }

        It 'Set gives the adapter the main connection''s servers and clears the DNS cache' {
            $state = Get-PsgenDnsServerList -Property $prop
            Set-PsgenDnsServerList -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'Set-DnsClientServerAddress' -Times 1 -Exactly -ParameterFilter {
                $InterfaceIndex -contains 42 -and ($ServerAddresses -join ',') -eq '192.168.1.1'
            }
            Should -Invoke -CommandName 'Clear-DnsClientCache' -Times 1 -Exactly
            $after = Get-PsgenDnsServerList -Property $prop
            Test-PsgenDnsServerList -Property $prop -State $after | Should -BeTrue
        }

        It 'Set with clear_cache off leaves the DNS cache alone' {
            $prop.ClearCache = $false
            $state = Get-PsgenDnsServerList -Property $prop
            Set-PsgenDnsServerList -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'Clear-DnsClientCache' -Times 0 -Exactly
        }

        It 'Set refuses, changing nothing, when no DNS servers are known' {
            Mock -CommandName 'Get-NetRoute' -MockWith { @() }
            $state = Get-PsgenDnsServerList -Property $prop
            @($state.Wanted).Count | Should -Be 0
            # The runtime skips the step (nothing is journalled or rolled back) ...
            $state.PsgenSkip | Should -BeLike '*No DNS servers to use are known*-DnsServers*'
            # ... and Set still refuses if it is ever called.
            { Set-PsgenDnsServerList -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*No DNS servers are known*Nothing was changed.*'
            Should -Invoke -CommandName 'Set-DnsClientServerAddress' -Times 0 -Exactly
        }

        It 'Restore of a <Case> state hands the adapter back to DHCP (-ResetServerAddresses) only' -ForEach @(
            @{ Case = 'DHCP'; FakeServers = @('10.9.9.9') }
            @{ Case = 'empty'; FakeServers = @() }
        ) {
            $fakeDns.NameServer.Tcpip = ''
            $fakeDns.Rows[0].ServerAddresses = $FakeServers
            $state = Get-PsgenDnsServerList -Property $prop
            $state.Adapters[0].IPv4Static | Should -BeFalse
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenDnsServerList -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Set-DnsClientServerAddress' -Times 1 -Exactly -ParameterFilter {
                $InterfaceIndex -contains 42 -and $ResetServerAddresses
            }
            Should -Invoke -CommandName 'Set-DnsClientServerAddress' -Times 0 -Exactly -ParameterFilter {
                $null -ne $ServerAddresses
            }
            Should -Invoke -CommandName 'Clear-DnsClientCache' -Times 1 -Exactly
        }

        It 'Restore of a static state resets the adapter, then puts the typed-in servers back' {
            $state = Get-PsgenDnsServerList -Property $prop
            Set-PsgenDnsServerList -Property $prop -State $state -Confirm:$false
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenDnsServerList -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Set-DnsClientServerAddress' -Times 1 -Exactly -ParameterFilter {
                $ResetServerAddresses
            }
            Should -Invoke -CommandName 'Set-DnsClientServerAddress' -Times 1 -Exactly -ParameterFilter {
                ($ServerAddresses -join ',') -eq '10.9.9.9'
            }
            ($fakeDns.Rows[0].ServerAddresses -join ',') | Should -BeExactly '10.9.9.9'
        }

        It 'no VM adapter right now: skipped with a reason' {
            $fakeDns.Rows = @($fakeDns.Rows | Where-Object -FilterScript { $_.InterfaceIndex -ne 42 })
            $state = Get-PsgenDnsServerList -Property $prop
            $state.PsgenSkip | Should -BeLike '*No network adapter named like vEthernet (cowork-vm*) exists*'
        }

        It 'its state survives the journal (JSON and CliXml): same Test, a working Restore' {
            $state = Get-PsgenDnsServerList -Property $prop
            $null = Assert-StateRoundTrip -Noun 'DnsServerList' -Property $prop -State $state
            ($fakeDns.Rows[0].ServerAddresses -join ',') | Should -BeExactly '10.9.9.9'
        }
    }

    Context 'winnat_rule: the NAT rule for the subnet of Cowork''s HNS network' {
        BeforeEach {
            $fakeNat = @{ Rules = @() }
            $fakeHns = @{ Networks = @(New-FakeHnsNetwork -Name 'cowork-vm-nat' -Subnet '172.17.0.0/24') }
            Mock -CommandName 'Get-CimClass' -MockWith { [pscustomobject]@{ CimClassName = 'MSFT_NetNat' } }
            Mock -CommandName 'Get-PsgenHnsTool' -MockWith { 'module' }
            Mock -CommandName 'Get-HnsNetwork' -MockWith { $fakeHns.Networks }
            Mock -CommandName 'Get-NetIPAddress' -MockWith { @() }
            # A NAT table in memory: New-NetNat adds to it, Remove-NetNat takes from it.
            Mock -CommandName 'Get-NetNat' -MockWith { $fakeNat.Rules }
            Mock -CommandName 'New-NetNat' -MockWith {
                $fakeRule = [pscustomobject]@{
                    Name = $Name
                    InternalIPInterfaceAddressPrefix = $InternalIPInterfaceAddressPrefix
                }
                $fakeNat.Rules = @($fakeNat.Rules) + @($fakeRule)
                $fakeRule
            }
            Mock -CommandName 'Remove-NetNat' -MockWith {
                $fakeNat.Rules = @($fakeNat.Rules | Where-Object -FilterScript { $Name -notcontains $_.Name })
            }
            $prop = New-TestProperty -Noun 'WinNatRule'
        }

        It 'takes the subnet from the HNS network (no constant): <HnsSubnet> gives <ExpectedPrefix>' -ForEach @(
            @{ HnsSubnet = '172.16.0.0/24'; ExpectedPrefix = '172.16.0.0/24' }
            @{ HnsSubnet = '172.17.0.0/24'; ExpectedPrefix = '172.17.0.0/24' }
            @{ HnsSubnet = '172.29.18.1/20'; ExpectedPrefix = '172.29.16.0/20' }
        ) {
            $fakeHns.Networks = @(New-FakeHnsNetwork -Name 'cowork-vm-nat' -Subnet $HnsSubnet)
            $state = Get-PsgenWinNatRule -Property $prop
            $state.PsgenSkip | Should -BeExactly ''
            $state.Networks[0].Prefix | Should -BeExactly $ExpectedPrefix
            $state.Networks[0].From | Should -BeExactly 'HNS network'
            $state.Missing[0].Name | Should -BeExactly 'cowork-vm-nat'
            $state.Missing[0].Prefix | Should -BeExactly $ExpectedPrefix
            $detail = 'WinNAT rule missing for {0} (network cowork-vm-nat)' -f $ExpectedPrefix
            $state.PsgenDetail | Should -BeExactly $detail
            Test-PsgenWinNatRule -Property $prop -State $state | Should -BeFalse
            Set-PsgenWinNatRule -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'New-NetNat' -Times 1 -Exactly -ParameterFilter {
                $Name -eq 'cowork-vm-nat' -and $InternalIPInterfaceAddressPrefix -eq $ExpectedPrefix
            }
            $after = Get-PsgenWinNatRule -Property $prop
            Test-PsgenWinNatRule -Property $prop -State $after | Should -BeTrue
        }

        It 'falls back to the VM adapter''s address when the HNS network lists no subnet' {
            $fakeHns.Networks = @(New-FakeHnsNetwork -Name 'cowork-vm-nat')
            Mock -CommandName 'Get-NetIPAddress' -MockWith {
                [pscustomobject]@{
                    InterfaceAlias = 'vEthernet (cowork-vm-nat)'
                    IPAddress = '172.17.0.1'
                    PrefixLength = 24
                }
            }
            $state = Get-PsgenWinNatRule -Property $prop
            $state.Networks[0].Prefix | Should -BeExactly '172.17.0.0/24'
            $state.Networks[0].From | Should -BeExactly 'adapter of the HNS network'
        }

        It 'skips with a reason where Windows has no NetNat class (Home: Invalid class)' {
            Mock -CommandName 'Get-CimClass' -MockWith { throw 'Invalid class (0x80041010)' }
            $state = Get-PsgenWinNatRule -Property $prop
            $state.PsgenSkip | Should -BeLike '*has no WinNAT*'
            Should -Invoke -CommandName 'Get-NetNat' -Times 0 -Exactly
            Should -Invoke -CommandName 'Get-HnsNetwork' -Times 0 -Exactly
        }

        It 'skips with a reason when Cowork''s network is not a NAT network' {
            $fakeHns.Networks = @(
                New-FakeHnsNetwork -Name 'cowork-vm-vnet' -Type 'Transparent' -Subnet '172.18.0.0/24'
            )
            $state = Get-PsgenWinNatRule -Property $prop
            $state.PsgenSkip | Should -BeLike '*not a NAT network (cowork-vm-vnet (Transparent))*'
        }

        It '<FakeError> and no NAT rule listed: Set throws, says nothing changed and to restart' -ForEach @(
            @{ FakeError = 'Windows System Error 52' }
            @{ FakeError = 'A duplicate name exists on the network.' }
        ) {
            Mock -CommandName 'New-NetNat' -MockWith { throw $FakeError }
            $state = Get-PsgenWinNatRule -Property $prop
            { Set-PsgenWinNatRule -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*no NAT rule is listed*Nothing was changed.*restart the computer*'
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenWinNatRule -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Remove-NetNat' -Times 0 -Exactly
        }

        It 'another NAT rule exists and Windows refuses: Set throws and names it' {
            $fakeNat.Rules = @(
                [pscustomobject]@{ Name = 'DockerNAT'; InternalIPInterfaceAddressPrefix = '10.0.75.0/24' }
            )
            Mock -CommandName 'New-NetNat' -MockWith { throw 'The parameter is incorrect.' }
            $state = Get-PsgenWinNatRule -Property $prop
            { Set-PsgenWinNatRule -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*Other NAT rules exist: DockerNAT (10.0.75.0/24)*Nothing*changed*'
        }

        It 'Restore removes the rule this run created' {
            $state = Get-PsgenWinNatRule -Property $prop
            Set-PsgenWinNatRule -Property $prop -State $state -Confirm:$false
            @($fakeNat.Rules).Count | Should -Be 1
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenWinNatRule -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Remove-NetNat' -Times 1 -Exactly -ParameterFilter {
                $Name -contains 'cowork-vm-nat'
            }
            @($fakeNat.Rules).Count | Should -Be 0
        }

        It 'Restore leaves a rule that existed before this run (<RuleName>)' -ForEach @(
            @{ RuleName = 'cowork-vm-nat' }
            @{ RuleName = 'DockerNAT' }
        ) {
            $fakeNat.Rules = @(
                [pscustomobject]@{ Name = $RuleName; InternalIPInterfaceAddressPrefix = '172.17.0.0/24' }
            )
            $state = Get-PsgenWinNatRule -Property $prop
            Test-PsgenWinNatRule -Property $prop -State $state | Should -BeTrue
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenWinNatRule -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Remove-NetNat' -Times 0 -Exactly
            @($fakeNat.Rules).Count | Should -Be 1
        }

        It 'replaces a same-named rule for an old subnet, and Restore puts the old one back' {
            $fakeNat.Rules = @(
                [pscustomobject]@{ Name = 'cowork-vm-nat'; InternalIPInterfaceAddressPrefix = '172.16.0.0/24' }
            )
            $state = Get-PsgenWinNatRule -Property $prop
            $state.Stale[0].Prefix | Should -BeExactly '172.16.0.0/24'
            $state.PsgenDetail | Should -BeLike '*NAT rule cowork-vm-nat covers 172.16.0.0/24, an old subnet*'
            Set-PsgenWinNatRule -Property $prop -State $state -Confirm:$false
            Get-FakeNatText -Table $fakeNat | Should -BeExactly 'cowork-vm-nat=172.17.0.0/24'
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenWinNatRule -Property $prop -State $copy -Confirm:$false
            Get-FakeNatText -Table $fakeNat | Should -BeExactly 'cowork-vm-nat=172.16.0.0/24'
        }

        It 'its state survives the journal (JSON and CliXml): same Test, a working Restore' {
            $state = Get-PsgenWinNatRule -Property $prop
            $null = Assert-StateRoundTrip -Noun 'WinNatRule' -Property $prop -State $state
            Should -Invoke -CommandName 'Remove-NetNat' -Times 0 -Exactly
        }
    }

    Context 'hns_network_absent: Cowork''s HNS network removed (it breaks WSL)' {
        BeforeEach {
            $fakeHns = @{
                Networks = @(
                    (New-FakeHnsNetwork -Name 'cowork-vm-nat' -Subnet '172.17.0.0/24'),
                    (New-FakeHnsNetwork -Name 'cowork-vm-vnet' -Type 'Transparent'),
                    (New-FakeHnsNetwork -Name 'nat' -Subnet '172.24.0.0/20')
                )
                Calls = 0
            }
            $fakeService = @{ Status = 'Running' }
            # A stand-in for hnsdiag.exe: the list output psgen parses, and a delete it records.
            $fakeDiag = Join-Path -Path $TestDrive -ChildPath 'hnsdiag.cmd'
            $fakeDeleted = Join-Path -Path $TestDrive -ChildPath 'hnsdiag-deleted.txt'
            $fakeMissing = Join-Path -Path $TestDrive -ChildPath 'no-such-folder\hnsdiag.exe'
            Remove-Item -LiteralPath $fakeDeleted -ErrorAction SilentlyContinue
            Set-Content -LiteralPath $fakeDiag -Encoding ASCII -Value @(
                '@echo off',
                'if /i "%~1"=="list" goto list',
                'if /i "%~1"=="delete" goto delete',
                'exit /b 2',
                ':list',
                'echo Network : 9E5B3B7E-2F0B-4C1A-9C3E-0A1B2C3D4E5F',
                'echo     Name             : cowork-vm-nat',
                'echo     Type             : NAT',
                'echo     Subnet Address   : 172.16.0.0/24',
                'echo     Gateway Address  : 172.16.0.1',
                'echo Network : 0D6A7B8C-1E2F-4A5B-8C9D-112233445566',
                'echo     Name             : cowork-vm-vnet',
                'echo     Type             : Transparent',
                'echo Network : 5C4B3A29-1807-4F6E-9D8C-7B6A59483726',
                'echo     Name             : Default Switch',
                'echo     Type             : ICS',
                'echo     Subnet Address   : 172.29.16.0/20',
                'exit /b 0',
                ':delete',
                'if "%PSGEN_PESTER_HNSDIAG_FAIL%"=="1" goto fail',
                '>>"%~dp0hnsdiag-deleted.txt" echo %~3',
                'exit /b 0',
                ':fail',
                'echo Error: the network could not be deleted.',
                'exit /b 1'
            )
            Mock -CommandName 'Get-HnsNetwork' -MockWith { $fakeHns.Networks }
            Mock -CommandName 'Remove-HnsNetwork' -MockWith { @() }
            Mock -CommandName 'Get-Service' -MockWith {
                [pscustomobject]@{
                    Name = 'CoworkVMService'
                    Status = $fakeService.Status
                    StartType = 'Automatic'
                }
            }
            Mock -CommandName 'Get-CimInstance' -MockWith { @() }
            Mock -CommandName 'Restart-Service' -MockWith { @() }
            Mock -CommandName 'Start-Service' -MockWith { @() }
            Mock -CommandName 'Wait-PsgenServiceStatus' -MockWith { @() }
            Mock -CommandName 'Start-Sleep' -MockWith { @() }
            $prop = New-TestProperty -Noun 'HnsNetworkAbsent'
        }

        It 'uses the built-in HostNetworkingService module first, even when hnsdiag.exe exists' {
            Mock -CommandName 'Test-Path' -MockWith { & $script:RealTestPath @PesterBoundParameters }
            Mock -CommandName 'Test-Path' -ParameterFilter {
                [string]$LiteralPath -like '*\hnsdiag.exe'
            } -MockWith { $true }
            Get-PsgenHnsTool | Should -BeExactly 'module'
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            $state.Tool | Should -BeExactly 'module'
            @($state.Networks).Count | Should -Be 1
            $state.Networks[0].Name | Should -BeExactly 'cowork-vm-nat'
            $state.PsgenDetail | Should -BeExactly 'HNS network present: cowork-vm-nat (172.17.0.0/24)'
            Test-PsgenHnsNetworkAbsent -Property $prop -State $state | Should -BeFalse
            Set-PsgenHnsNetworkAbsent -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'Remove-HnsNetwork' -Times 1 -Exactly
        }

        It 'falls back to hnsdiag.exe without the module: reads its list, deletes by id' {
            Mock -CommandName 'Get-Command' -MockWith { & $script:RealGetCommand @PesterBoundParameters }
            Mock -CommandName 'Get-Command' -ParameterFilter { [string]$Name -like '*-HnsNetwork' } -MockWith {
                @()
            }
            Mock -CommandName 'Join-Path' -MockWith { & $script:RealJoinPath @PesterBoundParameters }
            Mock -CommandName 'Join-Path' -ParameterFilter { $ChildPath -eq 'System32\hnsdiag.exe' } -MockWith {
                $fakeDiag
            }
            Get-PsgenHnsTool | Should -BeExactly 'hnsdiag'
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            $state.Tool | Should -BeExactly 'hnsdiag'
            @($state.Networks).Count | Should -Be 1
            $state.Networks[0].Id | Should -BeExactly '9E5B3B7E-2F0B-4C1A-9C3E-0A1B2C3D4E5F'
            $state.Networks[0].Name | Should -BeExactly 'cowork-vm-nat'
            ($state.Networks[0].Prefixes -join ',') | Should -BeExactly '172.16.0.0/24'
            Set-PsgenHnsNetworkAbsent -Property $prop -State $state -Confirm:$false
            $deleted = (Get-Content -LiteralPath $fakeDeleted -Raw).Trim()
            $deleted | Should -BeExactly '9E5B3B7E-2F0B-4C1A-9C3E-0A1B2C3D4E5F'
            Should -Invoke -CommandName 'Get-HnsNetwork' -Times 0 -Exactly
            Should -Invoke -CommandName 'Remove-HnsNetwork' -Times 0 -Exactly
        }

        It 'hnsdiag.exe failing to delete: Set throws with its exit code' {
            Mock -CommandName 'Get-Command' -MockWith { & $script:RealGetCommand @PesterBoundParameters }
            Mock -CommandName 'Get-Command' -ParameterFilter { [string]$Name -like '*-HnsNetwork' } -MockWith {
                @()
            }
            Mock -CommandName 'Join-Path' -MockWith { & $script:RealJoinPath @PesterBoundParameters }
            Mock -CommandName 'Join-Path' -ParameterFilter { $ChildPath -eq 'System32\hnsdiag.exe' } -MockWith {
                $fakeDiag
            }
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            $env:PSGEN_PESTER_HNSDIAG_FAIL = '1'
            try {
                { Set-PsgenHnsNetworkAbsent -Property $prop -State $state -Confirm:$false } |
                    Should -Throw -ExpectedMessage '*could not remove the network cowork-vm-nat (exit code 1)*'
            }
            finally {
                Remove-Item -LiteralPath 'Env:\PSGEN_PESTER_HNSDIAG_FAIL' -ErrorAction SilentlyContinue
            }
        }

        It 'skips with a reason when there is neither the module nor hnsdiag.exe' {
            Mock -CommandName 'Get-Command' -MockWith { & $script:RealGetCommand @PesterBoundParameters }
            Mock -CommandName 'Get-Command' -ParameterFilter { [string]$Name -like '*-HnsNetwork' } -MockWith {
                @()
            }
            Mock -CommandName 'Join-Path' -MockWith { & $script:RealJoinPath @PesterBoundParameters }
            Mock -CommandName 'Join-Path' -ParameterFilter { $ChildPath -eq 'System32\hnsdiag.exe' } -MockWith {
                $fakeMissing
            }
            Get-PsgenHnsTool | Should -BeExactly ''
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            $state.PsgenSkip | Should -BeLike '*neither the HostNetworkingService PowerShell module nor hnsdiag*'
            @($state.Networks).Count | Should -Be 0
        }

        It 'Restore restarts the service (which makes the network again) and waits for the network' {
            Mock -CommandName 'Get-PsgenHnsTool' -MockWith { 'module' }
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            Set-PsgenHnsNetworkAbsent -Property $prop -State $state -Confirm:$false
            # Gone when Restore first looks, back at the next look.
            Mock -CommandName 'Get-HnsNetwork' -MockWith {
                $fakeHns.Calls++
                if ($fakeHns.Calls -gt 1) {
                    $fakeHns.Networks
                }
            }
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenHnsNetworkAbsent -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Restart-Service' -Times 1 -Exactly -ParameterFilter {
                $Name -contains 'CoworkVMService'
            }
            Should -Invoke -CommandName 'Wait-PsgenServiceStatus' -Times 1 -Exactly
            $fakeHns.Calls | Should -Be 2
        }

        It 'Restore refuses to restart the service while Claude is open' {
            Mock -CommandName 'Get-PsgenHnsTool' -MockWith { 'module' }
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            Mock -CommandName 'Get-PsgenOpenApp' -MockWith { , @('claude (process 4242)') }
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            { Restore-PsgenHnsNetworkAbsent -Property $prop -State $copy -Confirm:$false } |
                Should -Throw -ExpectedMessage '*Claude is open*-Mode Rollback again*'
            Should -Invoke -CommandName 'Restart-Service' -Times 0 -Exactly
            Should -Invoke -CommandName 'Start-Service' -Times 0 -Exactly
        }

        It 'Restore starts a stopped service, and says what to do when the network does not come back' {
            Mock -CommandName 'Get-PsgenHnsTool' -MockWith { 'module' }
            $prop.WaitSeconds = 0
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            Mock -CommandName 'Get-HnsNetwork' -MockWith { @() }
            $fakeService.Status = 'Stopped'
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            { Restore-PsgenHnsNetworkAbsent -Property $prop -State $copy -Confirm:$false } |
                Should -Throw -ExpectedMessage '*not come back within 0 seconds*open Claude and start a Cowork*'
            Should -Invoke -CommandName 'Start-Service' -Times 1 -Exactly
            Should -Invoke -CommandName 'Restart-Service' -Times 0 -Exactly
        }

        It 'Restore changes nothing when no network was removed' {
            $fakeHns.Networks = @()
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            Test-PsgenHnsNetworkAbsent -Property $prop -State $state | Should -BeTrue
            Restore-PsgenHnsNetworkAbsent -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'Restart-Service' -Times 0 -Exactly
            Should -Invoke -CommandName 'Start-Service' -Times 0 -Exactly
        }

        It 'its state survives the journal (JSON and CliXml): same Test, a working Restore' {
            $state = Get-PsgenHnsNetworkAbsent -Property $prop
            $null = Assert-StateRoundTrip -Noun 'HnsNetworkAbsent' -Property $prop -State $state
            Should -Invoke -CommandName 'Restart-Service' -Times 0 -Exactly
        }
    }

    Context 'service_running: CoworkVMService runs, restarted after this run''s changes' {
        BeforeEach {
            $fakeService = @{
                Exists = $true
                Status = 'Running'
                Started = (Get-Date).AddHours(-1)
            }
            $fakeApps = @{ Running = @() }
            Mock -CommandName 'Get-Service' -MockWith {
                if ($fakeService.Exists) {
                    [pscustomobject]@{
                        Name = 'CoworkVMService'
                        Status = $fakeService.Status
                        StartType = 'Automatic'
                    }
                }
            }
            Mock -CommandName 'Get-CimInstance' -MockWith { @() }
            Mock -CommandName 'Get-CimInstance' -ParameterFilter { $ClassName -eq 'Win32_Service' } -MockWith {
                [pscustomobject]@{ ProcessId = 4711 }
            }
            Mock -CommandName 'Get-CimInstance' -ParameterFilter { $ClassName -eq 'Win32_Process' } -MockWith {
                [pscustomobject]@{ CreationDate = $fakeService.Started }
            }
            Mock -CommandName 'Start-Service' -MockWith {
                $fakeService.Status = 'Running'
                $fakeService.Started = Get-Date
            }
            Mock -CommandName 'Restart-Service' -MockWith {
                $fakeService.Status = 'Running'
                $fakeService.Started = Get-Date
            }
            Mock -CommandName 'Stop-Service' -MockWith { $fakeService.Status = 'Stopped' }
            Mock -CommandName 'Wait-PsgenServiceStatus' -MockWith { @() }
            Mock -CommandName 'Get-Process' -MockWith { $fakeApps.Running }
            # This run changed something five minutes ago (the runtime's journal says when).
            Mock -CommandName 'Get-PsgenLastChangeUtc' -MockWith {
                $invariant = [Globalization.CultureInfo]::InvariantCulture
                [DateTime]::UtcNow.AddMinutes(-5).ToString('yyyyMMddHHmmss', $invariant)
            }
            $prop = New-TestProperty -Noun 'ServiceRunning'
        }

        It 'started before this run''s last change: Test is false, Set restarts it (Claude closed)' {
            $state = Get-PsgenServiceRunning -Property $prop
            $state.PsgenDetail | Should -BeLike 'The service CoworkVMService has run since *, before this run*'
            Test-PsgenServiceRunning -Property $prop -State $state | Should -BeFalse
            Set-PsgenServiceRunning -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'Restart-Service' -Times 1 -Exactly
            $after = Get-PsgenServiceRunning -Property $prop
            Test-PsgenServiceRunning -Property $prop -State $after | Should -BeTrue
        }

        It 'Claude open: Set refuses to restart, naming the process' {
            $fakeApps.Running = @(New-FakeProcess -Id 4242)
            $state = Get-PsgenServiceRunning -Property $prop
            { Set-PsgenServiceRunning -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*Claude is still open (claude (process 4242))*'
            Should -Invoke -CommandName 'Restart-Service' -Times 0 -Exactly
        }

        It 'a stopped service is started, and Restore stops it again' {
            $fakeService.Status = 'Stopped'
            $state = Get-PsgenServiceRunning -Property $prop
            $state.PsgenDetail | Should -BeExactly 'The service CoworkVMService is Stopped (start type Automatic).'
            Test-PsgenServiceRunning -Property $prop -State $state | Should -BeFalse
            Set-PsgenServiceRunning -Property $prop -State $state -Confirm:$false
            Should -Invoke -CommandName 'Start-Service' -Times 1 -Exactly
            Should -Invoke -CommandName 'Restart-Service' -Times 0 -Exactly
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenServiceRunning -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Stop-Service' -Times 1 -Exactly
            $fakeService.Status | Should -BeExactly 'Stopped'
        }

        It 'restart_after_changes off: a running service is compliant, the journal is not read' {
            $prop.RestartAfterChanges = $false
            $state = Get-PsgenServiceRunning -Property $prop
            $state.LastChangeUtc | Should -BeExactly ''
            Test-PsgenServiceRunning -Property $prop -State $state | Should -BeTrue
            Should -Invoke -CommandName 'Get-PsgenLastChangeUtc' -Times 0 -Exactly
        }

        It 'not installed: skipped with a reason' {
            $fakeService.Exists = $false
            $state = Get-PsgenServiceRunning -Property $prop
            $state.PsgenSkip | Should -BeLike 'The service CoworkVMService is not installed*'
        }

        It 'its state survives the journal (JSON and CliXml): same Test, a working Restore' {
            $state = Get-PsgenServiceRunning -Property $prop
            $null = Assert-StateRoundTrip -Noun 'ServiceRunning' -Property $prop -State $state
            Should -Invoke -CommandName 'Stop-Service' -Times 0 -Exactly
            Should -Invoke -CommandName 'Start-Service' -Times 0 -Exactly
        }
    }

    Context 'session_disk_reset: the session disk renamed to a backup, never deleted' {
        BeforeEach {
            # A VM bundle in a temporary folder: the disk was made yesterday, and an hour ago the
            # app's log said the host share is not a mount point.
            $invariant = [Globalization.CultureInfo]::InvariantCulture
            $fakeRoot = Join-Path -Path $TestDrive -ChildPath ([guid]::NewGuid().ToString('N'))
            $fakeBundle = Join-Path -Path $fakeRoot -ChildPath 'claudevm.bundle'
            $fakeDisk = Join-Path -Path $fakeBundle -ChildPath 'sessiondata.vhdx'
            $fakeLogs = Join-Path -Path $fakeRoot -ChildPath 'logs'
            $null = New-Item -Path $fakeBundle -ItemType Directory -Force
            $null = New-Item -Path $fakeLogs -ItemType Directory -Force
            Set-Content -LiteralPath $fakeDisk -Value 'old data' -Encoding ASCII
            $diskItem = Get-Item -LiteralPath $fakeDisk
            $diskItem.CreationTime = (Get-Date).AddDays(-1)
            $then = (Get-Date).AddHours(-1).ToString('yyyy-MM-dd HH:mm:ss', $invariant)
            $serviceLog = Join-Path -Path $fakeRoot -ChildPath 'cowork-service.log'
            Set-Content -LiteralPath $serviceLog -Encoding UTF8 -Value @(
                ('{0}.000001 [Server] Starting CoworkVMService' -f $then),
                ('{0}.000002 [Server] Bundle: {1}' -f $then, $fakeBundle)
            )
            $nodeLog = Join-Path -Path $fakeLogs -ChildPath 'cowork_vm_node.log'
            Set-Content -LiteralPath $nodeLog -Encoding UTF8 -Value @(
                ('{0} [info] Starting the workspace' -f $then),
                (('{0} [error] CLI output was not valid JSON: sandbox-helper: host share not mounted at ' +
                    '/mnt/.virtiofs-root/shared: not a mount point') -f $then)
            )
            $fakeService = @{
                Status = 'Running'
                MakesDisk = $true
            }
            $fakeApps = @{ Running = @() }
            Mock -CommandName 'Get-Service' -MockWith {
                [pscustomobject]@{
                    Name = 'CoworkVMService'
                    Status = $fakeService.Status
                    StartType = 'Automatic'
                }
            }
            Mock -CommandName 'Get-CimInstance' -MockWith { @() }
            Mock -CommandName 'Stop-Service' -MockWith { $fakeService.Status = 'Stopped' }
            # Starting the service makes a new, empty disk (unless a test says it does not).
            Mock -CommandName 'Start-Service' -MockWith {
                $fakeService.Status = 'Running'
                if ($fakeService.MakesDisk) {
                    Set-Content -LiteralPath $fakeDisk -Value 'new disk' -Encoding ASCII
                }
            }
            Mock -CommandName 'Wait-PsgenServiceStatus' -MockWith { @() }
            Mock -CommandName 'Get-Process' -MockWith { $fakeApps.Running }
            $prop = New-TestProperty -Noun 'SessionDiskReset' -With @{
                ServiceLog = $serviceLog
                Bundles = @(Join-Path -Path $fakeRoot -ChildPath 'not-here.bundle')
                Logs = @($nodeLog)
                WaitSeconds = 30
            }
        }

        It 'the logs report the disk broken since it was made: Test is false, saying where and when' {
            $state = Get-PsgenSessionDiskReset -Property $prop
            $state.PsgenSkip | Should -BeExactly ''
            $state.Bundle | Should -BeExactly $fakeBundle
            $state.BundleFrom | Should -BeLike 'the service log*'
            $state.Disk | Should -BeExactly $fakeDisk
            $state.SymptomAfterDisk | Should -BeTrue
            $state.SymptomTime | Should -BeExactly $then
            $state.PsgenDetail | Should -BeLike '*says at*not a mount point*'
            $state.Backup | Should -Match '\.vhdx\.\d{8}-\d{6}(-\d+)?\.bak$'
            Test-Path -LiteralPath $state.Backup | Should -BeFalse
            Test-PsgenSessionDiskReset -Property $prop -State $state | Should -BeFalse
        }

        It 'a symptom logged before the disk was made does not count' {
            $diskItem = Get-Item -LiteralPath $fakeDisk
            $diskItem.CreationTime = Get-Date
            $state = Get-PsgenSessionDiskReset -Property $prop
            $state.SymptomAfterDisk | Should -BeFalse
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenSessionDiskReset -Property $prop -State $state | Should -BeTrue
        }

        It 'a new disk appears: Set succeeds and the old disk stays as the .bak (never deleted)' {
            $state = Get-PsgenSessionDiskReset -Property $prop
            Set-PsgenSessionDiskReset -Property $prop -State $state -Confirm:$false
            Get-Content -LiteralPath $state.Backup | Should -BeExactly 'old data'
            Get-Content -LiteralPath $fakeDisk | Should -BeExactly 'new disk'
            Should -Invoke -CommandName 'Stop-Service' -Times 1 -Exactly
            Should -Invoke -CommandName 'Start-Service' -Times 1 -Exactly
            # The check after the fix: the symptom is older than the new disk.
            $after = Get-PsgenSessionDiskReset -Property $prop
            Test-PsgenSessionDiskReset -Property $prop -State $after | Should -BeTrue
        }

        It 'no new disk in time: Set throws; Restore moves the late disk aside and renames the backup back' {
            $fakeService.MakesDisk = $false
            $prop.WaitSeconds = 0
            $state = Get-PsgenSessionDiskReset -Property $prop
            { Set-PsgenSessionDiskReset -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*did not make a new session disk within 0 seconds*put back*'
            Test-Path -LiteralPath $fakeDisk | Should -BeFalse
            Get-Content -LiteralPath $state.Backup | Should -BeExactly 'old data'
            # Cowork makes its disk late, after the fix gave up.
            Set-Content -LiteralPath $fakeDisk -Value 'late disk' -Encoding ASCII
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenSessionDiskReset -Property $prop -State $copy -Confirm:$false
            Get-Content -LiteralPath $fakeDisk | Should -BeExactly 'old data'
            Test-Path -LiteralPath $state.Backup | Should -BeFalse
            $aside = @(Get-ChildItem -LiteralPath $fakeBundle -Filter 'sessiondata.vhdx.*.new')
            $aside.Count | Should -Be 1
            Get-Content -LiteralPath $aside[0].FullName | Should -BeExactly 'late disk'
            Should -Invoke -CommandName 'Stop-Service' -Times 2 -Exactly
            Should -Invoke -CommandName 'Start-Service' -Times 2 -Exactly
        }

        It 'Claude open: Set refuses before touching the service or the disk' {
            $fakeApps.Running = @(New-FakeProcess)
            $state = Get-PsgenSessionDiskReset -Property $prop
            { Set-PsgenSessionDiskReset -Property $prop -State $state -Confirm:$false } |
                Should -Throw -ExpectedMessage '*Claude is still open*using the session disk*Nothing was changed.*'
            Should -Invoke -CommandName 'Stop-Service' -Times 0 -Exactly
            Should -Invoke -CommandName 'Start-Service' -Times 0 -Exactly
            Get-Content -LiteralPath $fakeDisk | Should -BeExactly 'old data'
            @(Get-ChildItem -LiteralPath $fakeBundle -Filter '*.bak').Count | Should -Be 0
        }

        It 'Restore changes nothing when the fix stopped before the rename' {
            $state = Get-PsgenSessionDiskReset -Property $prop
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenSessionDiskReset -Property $prop -State $copy -Confirm:$false
            Should -Invoke -CommandName 'Stop-Service' -Times 0 -Exactly
            Get-Content -LiteralPath $fakeDisk | Should -BeExactly 'old data'
        }

        It 'Restore refuses while Claude is open, and says how to finish later' {
            $state = Get-PsgenSessionDiskReset -Property $prop
            Set-PsgenSessionDiskReset -Property $prop -State $state -Confirm:$false
            $fakeApps.Running = @(New-FakeProcess)
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            { Restore-PsgenSessionDiskReset -Property $prop -State $copy -Confirm:$false } |
                Should -Throw -ExpectedMessage '*Claude is open*-Mode Rollback*'
            Get-Content -LiteralPath $fakeDisk | Should -BeExactly 'new disk'
            Get-Content -LiteralPath $state.Backup | Should -BeExactly 'old data'
        }

        It 'a rename that fails after the service stopped: Restore starts the service again' {
            Mock -CommandName 'Move-Item' -MockWith { throw 'The process cannot access the file.' }
            $state = Get-PsgenSessionDiskReset -Property $prop
            { Set-PsgenSessionDiskReset -Property $prop -State $state -Confirm:$false } | Should -Throw
            $copy = ConvertTo-Json -InputObject $state -Depth 12 | ConvertFrom-Json
            Restore-PsgenSessionDiskReset -Property $prop -State $copy -Confirm:$false
            $fakeService.Status | Should -BeExactly 'Running'
        }

        It 'its state survives the journal (JSON and CliXml): same Test, a working Restore' {
            $state = Get-PsgenSessionDiskReset -Property $prop
            $null = Assert-StateRoundTrip -Noun 'SessionDiskReset' -Property $prop -State $state
            Get-Content -LiteralPath $fakeDisk | Should -BeExactly 'old data'
        }
    }

    Context 'log_contains: a log line, unless a later line cleared it' {
        BeforeEach {
            $fakeRoot = Join-Path -Path $TestDrive -ChildPath ([guid]::NewGuid().ToString('N'))
            $env:PSGEN_PESTER_ROOT = $fakeRoot
            $storeFolder = Join-Path -Path $fakeRoot -ChildPath 'Packages\Claude_pzs8sxrjxfjjc\LocalCache\Roaming'
            $storeFolder = Join-Path -Path $storeFolder -ChildPath 'Claude\logs'
            $plainFolder = Join-Path -Path $fakeRoot -ChildPath 'Claude\logs'
            $null = New-Item -Path $storeFolder -ItemType Directory -Force
            $null = New-Item -Path $plainFolder -ItemType Directory -Force
            $storeLog = Join-Path -Path $storeFolder -ChildPath 'cowork_vm_node.log'
            $plainLog = Join-Path -Path $plainFolder -ChildPath 'cowork_vm_node.log'
            $prop = New-TestProperty -Noun 'LogPattern' -With @{
                Paths = @(
                    '%PSGEN_PESTER_ROOT%\Packages\Claude_*\LocalCache\Roaming\Claude\logs\cowork_vm_node.log',
                    '%PSGEN_PESTER_ROOT%\Claude\logs\cowork_vm_node.log'
                )
            }
        }

        AfterEach {
            Remove-Item -LiteralPath 'Env:\PSGEN_PESTER_ROOT' -ErrorAction SilentlyContinue
        }

        It 'a problem line that nothing cleared is a finding, naming its log' {
            Set-Content -LiteralPath $storeLog -Encoding UTF8 -Value @(
                '2026-04-15 09:58:40 [info] Network status: CONNECTED',
                '2026-04-15 09:58:41 [warn] API reachability: PROBABLY_UNREACHABLE',
                '2026-04-15 09:58:44 [error] API reachability: UNREACHABLE'
            )
            $state = Get-PsgenLogPattern -Property $prop
            $state.Found | Should -BeTrue
            $state.File | Should -BeLike '*\Packages\Claude_pzs8sxrjxfjjc\*\cowork_vm_node.log'
            $state.Line | Should -BeExactly '2026-04-15 09:58:44 [error] API reachability: UNREACHABLE'
            $state.PsgenDetail | Should -BeExactly ('{0} says: {1}' -f $state.File, $state.Line)
            Test-PsgenLogPattern -Property $prop -State $state | Should -BeFalse
        }

        It 'a later cleared_by line in the same log clears it' {
            Set-Content -LiteralPath $storeLog -Encoding UTF8 -Value @(
                '2026-04-15 09:58:44 [error] API reachability: UNREACHABLE',
                '2026-04-15 10:02:10 [info] API reachability: REACHABLE'
            )
            $state = Get-PsgenLogPattern -Property $prop
            $state.Found | Should -BeFalse
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenLogPattern -Property $prop -State $state | Should -BeTrue
        }

        It 'a cleared_by line in another log does not clear it' {
            $fakeLine = '2026-04-15 09:58:44 [error] API reachability: UNREACHABLE'
            Set-Content -LiteralPath $storeLog -Encoding UTF8 -Value $fakeLine
            $fakeLine = '2026-04-15 10:02:10 [info] API reachability: REACHABLE'
            Set-Content -LiteralPath $plainLog -Encoding UTF8 -Value $fakeLine
            $state = Get-PsgenLogPattern -Property $prop
            @($state.Logs).Count | Should -Be 2
            $state.Found | Should -BeTrue
            $state.File | Should -BeLike '*\Packages\*'
            Test-PsgenLogPattern -Property $prop -State $state | Should -BeFalse
        }

        It 'expect present: a line that is missing is the finding' {
            $prop.Pattern = '\[VNet\] VM network connected'
            $prop.ClearedBy = ''
            $prop.Expect = 'present'
            $fakeLine = '2026-04-15 09:58:44 [HVSock] Accepted connection'
            Set-Content -LiteralPath $plainLog -Encoding UTF8 -Value $fakeLine
            $state = Get-PsgenLogPattern -Property $prop
            $state.Found | Should -BeFalse
            $state.PsgenDetail | Should -Match '^No line of .+ matches /'
            Test-PsgenLogPattern -Property $prop -State $state | Should -BeFalse
        }

        It 'no log yet: skipped with a reason' {
            $state = Get-PsgenLogPattern -Property $prop
            $state.PsgenSkip | Should -BeLike 'None of these logs exists yet*'
            @($state.Logs).Count | Should -Be 0
        }

        It 'its state survives the journal (JSON and CliXml): same Test result' {
            $fakeLine = '2026-04-15 09:58:44 [error] API reachability: UNREACHABLE'
            Set-Content -LiteralPath $storeLog -Encoding UTF8 -Value $fakeLine
            $state = Get-PsgenLogPattern -Property $prop
            $null = Assert-StateRoundTrip -Noun 'LogPattern' -Property $prop -State $state
        }
    }

    Context 'free_disk_space: room for the VM on the drive' {
        BeforeEach {
            $env:PSGEN_PESTER_FOLDER = $TestDrive
        }

        AfterEach {
            Remove-Item -LiteralPath 'Env:\PSGEN_PESTER_FOLDER' -ErrorAction SilentlyContinue
        }

        It 'enough room: Test is true' {
            $prop = New-TestProperty -Noun 'FreeDiskSpace' -With @{ Path = '%PSGEN_PESTER_FOLDER%'; MinGb = 0 }
            $state = Get-PsgenFreeDiskSpace -Property $prop
            $state.Path | Should -BeExactly $TestDrive
            $state.FreeBytes | Should -BeGreaterThan 0
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenFreeDiskSpace -Property $prop -State $state | Should -BeTrue
        }

        It 'less than min_gb free: Test is false, PsgenDetail gives both figures' {
            $prop = New-TestProperty -Noun 'FreeDiskSpace' -With @{
                Path = '%PSGEN_PESTER_FOLDER%'
                MinGb = 1048576
            }
            $state = Get-PsgenFreeDiskSpace -Property $prop
            $detail = 'Drive {0} has * GB free; Cowork''s VM needs about 1048576 GB.' -f $state.Drive
            $state.PsgenDetail | Should -BeLike $detail
            Test-PsgenFreeDiskSpace -Property $prop -State $state | Should -BeFalse
        }

        It 'a drive that does not exist: skipped with a reason' {
            $used = @([System.IO.DriveInfo]::GetDrives() | ForEach-Object -Process {
                    $_.Name.Substring(0, 1).ToUpperInvariant()
                })
            $letter = @([char[]]'QRSTUVWXYZ' | ForEach-Object -Process { [string]$_ } |
                Where-Object -FilterScript { $used -notcontains $_ })[0]
            $prop = New-TestProperty -Noun 'FreeDiskSpace' -With @{ Path = ('{0}:\psgen-pester' -f $letter) }
            $state = Get-PsgenFreeDiskSpace -Property $prop
            $state.PsgenSkip | Should -BeExactly ('The drive of {0}:\psgen-pester was not found.' -f $letter)
        }

        It 'its state survives the journal (JSON and CliXml): same Test result' {
            $prop = New-TestProperty -Noun 'FreeDiskSpace' -With @{
                Path = '%PSGEN_PESTER_FOLDER%'
                MinGb = 1048576
            }
            $state = Get-PsgenFreeDiskSpace -Property $prop
            $null = Assert-StateRoundTrip -Noun 'FreeDiskSpace' -Property $prop -State $state
        }
    }

    Context 'tunnel_adapters: VPN and tunnel adapters that are up' {
        BeforeEach {
            $fakeAdapters = @{
                All = @(
                    [pscustomobject]@{
                        Name = 'Ethernet'
                        InterfaceDescription = 'Intel(R) Ethernet Connection'
                        Status = 'Up'
                    },
                    [pscustomobject]@{
                        Name = 'wg0'
                        InterfaceDescription = 'WireGuard Tunnel'
                        Status = 'Up'
                    },
                    [pscustomobject]@{
                        Name = 'Tailscale'
                        InterfaceDescription = 'Tailscale Tunnel'
                        Status = 'Disconnected'
                    }
                )
            }
            Mock -CommandName 'Get-NetAdapter' -MockWith { $fakeAdapters.All }
            $prop = New-TestProperty -Noun 'TunnelAdapter'
        }

        It 'a connected WireGuard adapter is a finding; a disconnected one and Ethernet are not' {
            $state = Get-PsgenTunnelAdapter -Property $prop
            ($state.Adapters -join ';') | Should -BeExactly 'wg0 (WireGuard Tunnel)'
            $state.PsgenDetail | Should -BeExactly 'Connected: wg0 (WireGuard Tunnel).'
            Test-PsgenTunnelAdapter -Property $prop -State $state | Should -BeFalse
        }

        It 'only ordinary adapters: Test is true' {
            $fakeAdapters.All = @($fakeAdapters.All[0])
            $state = Get-PsgenTunnelAdapter -Property $prop
            @($state.Adapters).Count | Should -Be 0
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenTunnelAdapter -Property $prop -State $state | Should -BeTrue
        }

        It 'its state survives the journal (JSON and CliXml): same Test result' {
            $state = Get-PsgenTunnelAdapter -Property $prop
            $null = Assert-StateRoundTrip -Noun 'TunnelAdapter' -Property $prop -State $state
        }
    }

    Context 'proxy_configured: WinHTTP, Internet Options and proxy variables' {
        BeforeEach {
            $fakeProxy = @{
                WinHttp = $null
                User = $null
            }
            Mock -CommandName 'Get-ItemProperty' -MockWith { $fakeProxy.User }
            Mock -CommandName 'Get-ItemProperty' -ParameterFilter {
                [string]$LiteralPath -like '*\Internet Settings\Connections'
            } -MockWith {
                if ($null -ne $fakeProxy.WinHttp) {
                    [pscustomobject]@{ WinHttpSettings = $fakeProxy.WinHttp }
                }
            }
            $prop = New-TestProperty -Noun 'ProxySetting' -With @{ Variables = @('PSGEN_PESTER_PROXY') }
        }

        AfterEach {
            Remove-Item -LiteralPath 'Env:\PSGEN_PESTER_PROXY' -ErrorAction SilentlyContinue
        }

        It 'finds the WinHTTP proxy, the Internet Options proxy and script, and a proxy variable' {
            # WinHttpSettings: bytes 8-11 flags (3: proxy), 12-15 the proxy's length, then the proxy.
            $fakeBytes = [Text.Encoding]::ASCII.GetBytes('proxy.corp.example:8080')
            $fakeHead = @(0x28, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, $fakeBytes.Length, 0, 0, 0)
            $fakeProxy.WinHttp = [byte[]]($fakeHead + $fakeBytes)
            $fakeProxy.User = [pscustomobject]@{
                ProxyEnable = 1
                ProxyServer = 'corp-proxy:3128'
                AutoConfigURL = 'http://wpad.corp.example/proxy.pac'
            }
            $env:PSGEN_PESTER_PROXY = 'http://10.0.0.1:3128'
            $state = Get-PsgenProxySetting -Property $prop
            @($state.Proxies).Count | Should -Be 4
            $state.Proxies[0] | Should -BeExactly 'WinHTTP proxy proxy.corp.example:8080'
            $state.Proxies[1] | Should -BeExactly 'Internet Options proxy corp-proxy:3128'
            $state.Proxies[2] | Should -BeExactly 'proxy script http://wpad.corp.example/proxy.pac'
            $state.Proxies[3] | Should -BeExactly 'PSGEN_PESTER_PROXY variable (process) http://10.0.0.1:3128'
            $state.PsgenDetail | Should -BeLike 'Proxy settings found: WinHTTP proxy proxy.corp.example:8080; *'
            Test-PsgenProxySetting -Property $prop -State $state | Should -BeFalse
        }

        It 'WinHTTP "direct access" and a switched-off user proxy are not findings' {
            $fakeProxy.WinHttp = [byte[]]@(0x28, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)
            $fakeProxy.User = [pscustomobject]@{
                ProxyEnable = 0
                ProxyServer = 'corp-proxy:3128'
            }
            $state = Get-PsgenProxySetting -Property $prop
            @($state.Proxies).Count | Should -Be 0
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenProxySetting -Property $prop -State $state | Should -BeTrue
        }

        It 'its state survives the journal (JSON and CliXml): same Test result' {
            $env:PSGEN_PESTER_PROXY = 'http://10.0.0.1:3128'
            $state = Get-PsgenProxySetting -Property $prop
            $null = Assert-StateRoundTrip -Noun 'ProxySetting' -Property $prop -State $state
        }
    }

    Context 'virtualization: the Windows features and the hypervisor the VM needs' {
        BeforeEach {
            # Win32_OptionalFeature InstallState: 1 enabled, 2 disabled; a feature not listed is absent.
            $fakeVirt = @{
                InstallState = @{
                    VirtualMachinePlatform = 1
                    HypervisorPlatform = 2
                }
                Hypervisor = $false
            }
            Mock -CommandName 'Get-CimInstance' -MockWith {
                if ($ClassName -eq 'Win32_ComputerSystem') {
                    return [pscustomobject]@{ HypervisorPresent = $fakeVirt.Hypervisor }
                }
                foreach ($fakeName in @($fakeVirt.InstallState.Keys)) {
                    if ($Filter -eq ("Name='{0}'" -f $fakeName)) {
                        return [pscustomobject]@{
                            Name = $fakeName
                            InstallState = $fakeVirt.InstallState[$fakeName]
                        }
                    }
                }
            }
            $prop = New-TestProperty -Noun 'VirtualizationState'
        }

        It 'a disabled feature and no hypervisor: Test is false, PsgenDetail names both' {
            $state = Get-PsgenVirtualizationState -Property $prop
            $detail = 'HypervisorPlatform is disabled; the hypervisor is not running (virtualization may be ' +
                'off in the BIOS/UEFI settings).'
            $state.PsgenDetail | Should -BeExactly $detail
            Test-PsgenVirtualizationState -Property $prop -State $state | Should -BeFalse
        }

        It 'a feature this Windows does not list counts as absent' {
            $fakeVirt.InstallState.Remove('HypervisorPlatform')
            $fakeVirt.Hypervisor = $true
            $state = Get-PsgenVirtualizationState -Property $prop
            ($state.Problems -join ';') | Should -BeExactly 'HypervisorPlatform is absent'
        }

        It 'everything on: Test is true' {
            $fakeVirt.InstallState.HypervisorPlatform = 1
            $fakeVirt.Hypervisor = $true
            $state = Get-PsgenVirtualizationState -Property $prop
            $state.PsgenDetail | Should -BeExactly ''
            Test-PsgenVirtualizationState -Property $prop -State $state | Should -BeTrue
        }

        It 'its state survives the journal (JSON and CliXml): same Test result' {
            $state = Get-PsgenVirtualizationState -Property $prop
            $null = Assert-StateRoundTrip -Noun 'VirtualizationState' -Property $prop -State $state
        }
    }

    Context 'vhdx_attributes: compressed or encrypted disks of the VM bundle' {
        BeforeEach {
            $fakeBundle = Join-Path -Path $TestDrive -ChildPath ([guid]::NewGuid().ToString('N'))
            $fakeBundle = Join-Path -Path $fakeBundle -ChildPath 'claudevm.bundle'
            $null = New-Item -Path $fakeBundle -ItemType Directory -Force
            $fakeFiles = @(
                foreach ($fakeSpec in @('smol-bin.vhdx=Archive', 'rootfs.vhdx=Archive, Compressed',
                        'sessiondata.vhdx=Archive, Encrypted')) {
                    $fakeParts = $fakeSpec -split '='
                    [pscustomobject]@{
                        Name = $fakeParts[0]
                        FullName = (Join-Path -Path $fakeBundle -ChildPath $fakeParts[0])
                        Attributes = [System.IO.FileAttributes]$fakeParts[1]
                    }
                }
            )
            Mock -CommandName 'Get-Item' -MockWith {
                [pscustomobject]@{
                    Name = 'claudevm.bundle'
                    FullName = $fakeBundle
                    Attributes = [System.IO.FileAttributes]::Directory
                }
            }
            Mock -CommandName 'Get-ChildItem' -MockWith { $fakeFiles }
            $prop = New-TestProperty -Noun 'VhdxAttribute' -With @{
                ServiceLog = (Join-Path -Path $TestDrive -ChildPath 'no-service.log')
                Bundles = @($fakeBundle)
            }
        }

        It 'flags the compressed and the encrypted disk, not the plain one' {
            $state = Get-PsgenVhdxAttribute -Property $prop
            $state.Bundle | Should -BeExactly $fakeBundle
            @($state.Flagged).Count | Should -Be 2
            $rootfs = Join-Path -Path $fakeBundle -ChildPath 'rootfs.vhdx'
            $session = Join-Path -Path $fakeBundle -ChildPath 'sessiondata.vhdx'
            $state.Flagged[0] | Should -BeExactly ('{0} (compressed)' -f $rootfs)
            $state.Flagged[1] | Should -BeExactly ('{0} (encrypted)' -f $session)
            $state.PsgenDetail | Should -BeLike 'Compressed or encrypted: *'
            Test-PsgenVhdxAttribute -Property $prop -State $state | Should -BeFalse
        }

        It 'no bundle found: skipped with a reason' {
            $prop.Bundles = @(Join-Path -Path $TestDrive -ChildPath 'not-here.bundle')
            $state = Get-PsgenVhdxAttribute -Property $prop
            $state.PsgenSkip | Should -BeLike '*(claudevm.bundle) was not found*'
            Should -Invoke -CommandName 'Get-ChildItem' -Times 0 -Exactly
        }

        It 'its state survives the journal (JSON and CliXml): same Test result' {
            $state = Get-PsgenVhdxAttribute -Property $prop
            $null = Assert-StateRoundTrip -Noun 'VhdxAttribute' -Property $prop -State $state
        }
    }
}

Describe 'Cowork resources on this machine (read-only; only where Hyper-V networking or Cowork is)' {
    BeforeEach {
        Set-StrictMode -Version 3.0
    }

    # Only a machine running the Hyper-V host networking service shows what real HNS objects hold.
    It 'real HNS networks have the Id and IPv4 subnets Get-PsgenHnsNetwork reads' -Skip:(-not $hasHyperV) {
        foreach ($network in (Get-PsgenHnsNetwork -Pattern '*' -Tool 'module')) {
            $network.Id | Should -Match '^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$'
            foreach ($prefix in @($network.Prefixes)) {
                $prefix | Should -Match '^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$'
            }
        }
    }

    # Real NetNat and HNS answers, read only (no Restore is run against the machine).
    It 'Get-PsgenWinNatRule reads this machine, and its state survives JSON' -Skip:(-not $hasHyperV) {
        $prop = New-TestProperty -Noun 'WinNatRule'
        $state = Get-PsgenWinNatRule -Property $prop
        $null = Assert-StateRoundTrip -Noun 'WinNatRule' -Property $prop -State $state -NoRestore
    }

    # Only a machine with Claude Cowork has its service log and VM bundle.
    It 'Get-PsgenSessionDiskReset finds the VM bundle here, and its state survives JSON' -Skip:(-not $hasCowork) {
        $prop = New-TestProperty -Noun 'SessionDiskReset'
        $state = Get-PsgenSessionDiskReset -Property $prop
        $null = Assert-StateRoundTrip -Noun 'SessionDiskReset' -Property $prop -State $state -NoRestore
        if ($state.Bundle) {
            Test-Path -LiteralPath $state.Bundle -PathType Container | Should -BeTrue
        }
    }
}
