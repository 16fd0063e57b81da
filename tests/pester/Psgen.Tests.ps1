#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    What only Windows can show: the generated runtime really runs, in Windows PowerShell 5.1
    and PowerShell 7. NOT RUN on psgen's own Linux CI; run by .github/workflows/windows.yml.

    Invoke-Pester -Path tests/pester -Output Detailed   (after: psgen build tests/pester/fixture.yaml -o out/pester/pester-fixture.ps1)
#>

BeforeAll {
    $script:Script = Join-Path -Path $PSScriptRoot -ChildPath '..\..\out\pester\pester-fixture.ps1'
    $script:Script = (Resolve-Path -LiteralPath $script:Script).Path
    $script:Work = Join-Path -Path $env:TEMP -ChildPath 'psgen-pester'
    $script:Key = 'HKCU:\Software\psgen-pester'
    $script:Log = Join-Path -Path $env:TEMP -ChildPath 'psgen-pester.log'

    function Reset-Fixture {
        Remove-Item -LiteralPath $script:Key -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath $script:Work -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath (Join-Path -Path $env:TEMP -ChildPath 'psgen\pester-fixture') -Recurse -Force -ErrorAction SilentlyContinue
        $null = New-Item -Path $script:Work -ItemType Directory -Force
        Set-Content -LiteralPath (Join-Path -Path $script:Work -ChildPath 'move-me.txt') -Value 'user data' -Encoding ASCII
    }

    function Invoke-Fixture {
        param(
            [string[]]$Arguments
        )
        # A child process, so exit codes are real and -Json output is exactly what a caller sees.
        $exe = (Get-Process -Id $PID).Path
        $all = @('-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $script:Script, '-LogPath', $script:Log) + $Arguments
        $output = & $exe @all
        return [pscustomobject]@{
            ExitCode = $LASTEXITCODE
            Output = @($output)
        }
    }
}

Describe 'generated script on Windows' {
    BeforeEach {
        Reset-Fixture
    }

    AfterAll {
        Remove-Item -LiteralPath $script:Key -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath $script:Work -Recurse -Force -ErrorAction SilentlyContinue
    }

    It 'has comment-based help that Get-Help reads' {
        $help = Get-Help -Name $script:Script -Full
        $help.Synopsis | Should -Match 'psgen Pester fixture'
        ($help.parameters.parameter | ForEach-Object -Process { $_.name }) | Should -Contain 'Mode'
    }

    It 'Check mode reports drift with exit code 1 and changes nothing' {
        $result = Invoke-Fixture -Arguments @('-Mode', 'Check')
        $result.ExitCode | Should -Be 1
        Test-Path -LiteralPath $script:Key | Should -BeFalse
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'move-me.txt') | Should -BeTrue
    }

    It '-Json writes exactly one JSON document to the output stream' {
        $result = Invoke-Fixture -Arguments @('-Mode', 'Check', '-Json')
        $result.Output.Count | Should -Be 1
        $doc = $result.Output[0] | ConvertFrom-Json
        $doc.schema | Should -Be 1
        $doc.exit_code | Should -Be 1
        @($doc.steps).Count | Should -Be 3
        ($doc.steps | Where-Object -FilterScript { $_.status -eq 'drift' }).Count | Should -Be 3
    }

    It 'Fix repairs, then a second run changes nothing (idempotent)' {
        (Invoke-Fixture -Arguments @('-Json')).ExitCode | Should -Be 0
        (Get-ItemProperty -LiteralPath $script:Key -Name 'Answer').Answer | Should -Be 42
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'move-me.txt') | Should -BeFalse
        @(Get-ChildItem -LiteralPath $script:Work -Filter 'move-me.txt.*.bak').Count | Should -Be 1
        $second = Invoke-Fixture -Arguments @('-Json')
        $second.ExitCode | Should -Be 0
        $doc = $second.Output[0] | ConvertFrom-Json
        ($doc.steps | Where-Object -FilterScript { $_.status -ne 'compliant' }) | Should -BeNullOrEmpty
    }

    It '-WhatIf changes nothing' {
        $null = Invoke-Fixture -Arguments @('-WhatIf')
        Test-Path -LiteralPath $script:Key | Should -BeFalse
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'move-me.txt') | Should -BeTrue
    }

    It 'a verify that fails rolls back every applied step in reverse (exit 2)' {
        $result = Invoke-Fixture -Arguments @('-BreakVerify', '-Json')
        $result.ExitCode | Should -Be 2
        Test-Path -LiteralPath $script:Key | Should -BeFalse
        Get-Content -LiteralPath (Join-Path -Path $script:Work -ChildPath 'move-me.txt') | Should -Be 'user data'
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeFalse
        $doc = $result.Output[0] | ConvertFrom-Json
        ($doc.steps | Where-Object -FilterScript { $_.status -eq 'rolled_back' }).Count | Should -Be 2
    }

    It '-Mode Rollback undoes an earlier run from its journal' {
        (Invoke-Fixture -Arguments @()).ExitCode | Should -Be 0
        $undo = Invoke-Fixture -Arguments @('-Mode', 'Rollback', '-Json')
        $undo.ExitCode | Should -Be 0
        # Every journal entry (three fixed steps) is reported as rolled back, none as failed.
        @(($undo.Output[0] | ConvertFrom-Json).steps | Where-Object -FilterScript { $_.status -eq 'rolled_back' }).Count |
            Should -Be 3
        Get-Content -LiteralPath (Join-Path -Path $script:Work -ChildPath 'move-me.txt') | Should -Be 'user data'
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeFalse
        # The value did not exist before: rollback removes it, and the key it created.
        Test-Path -LiteralPath $script:Key | Should -BeFalse
        # A second rollback finds everything already undone.
        (Invoke-Fixture -Arguments @('-Mode', 'Rollback')).ExitCode | Should -Be 0
    }

    It 'a typed finding or gate really runs its resource (cowork doctor on any machine)' {
        $doctor = (Resolve-Path -LiteralPath (Join-Path -Path $PSScriptRoot -ChildPath '..\..\out\cowork\doctor.ps1')).Path
        $exe = (Get-Process -Id $PID).Path
        $output = & $exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $doctor -Mode Check -Json
        @($output).Count | Should -Be 1
        $doc = $output | ConvertFrom-Json
        @($doc.steps | Where-Object -FilterScript { $_.message -like 'Could not check this*' }) |
            Should -BeNullOrEmpty
    }

    It 'a journal from another plan or a broken journal changes nothing (exit 4)' {
        $bad = Join-Path -Path $script:Work -ChildPath 'not-a-journal.json'
        Set-Content -LiteralPath $bad -Value 'not json' -Encoding ASCII
        (Invoke-Fixture -Arguments @('-Mode', 'Rollback', '-JournalPath', $bad)).ExitCode | Should -Be 4
    }

    It 'registry_value handles a key''s default value (the empty name), set and put back' {
        # The resource functions alone, taken from the compiled script without running it.
        $tokens = $null
        $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($script:Script, [ref]$tokens, [ref]$errors)
        $functions = $ast.FindAll({
                param($node)
                $node -is [System.Management.Automation.Language.FunctionDefinitionAst]
            }, $false)
        foreach ($function in $functions) {
            . ([scriptblock]::Create($function.Extent.Text))
        }
        $null = New-Item -Path $script:Key -Force
        $property = [ordered]@{
            Path = $script:Key
            ValueName = ''
            Ensure = 'present'
            Data = 'plan default'
            Kind = 'String'
        }
        $before = Get-PsgenRegistryValue -Property $property
        $before.Exists | Should -BeFalse
        Set-PsgenRegistryValue -Property $property -State $before -Confirm:$false
        (Get-Item -LiteralPath $script:Key).GetValue('') | Should -Be 'plan default'
        Test-PsgenRegistryValue -Property $property -State (Get-PsgenRegistryValue -Property $property) |
            Should -BeTrue
        Restore-PsgenRegistryValue -Property $property -State $before -Confirm:$false
        @((Get-Item -LiteralPath $script:Key -ErrorAction SilentlyContinue)) | Where-Object -FilterScript {
            @($_.GetValueNames()) -contains ''
        } | Should -BeNullOrEmpty
    }

    It 'writes a log and names it at the end' {
        $null = Invoke-Fixture -Arguments @('-Mode', 'Check')
        Get-Content -LiteralPath $script:Log -Raw | Should -Match 'psgen Pester fixture'
    }
}
